DROP TABLE events.outbox;
