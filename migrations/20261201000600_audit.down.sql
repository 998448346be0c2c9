DROP TABLE audit.events;
