-- Later migrations' down scripts drop every object in these schemas first.
DROP SCHEMA events;
DROP SCHEMA audit;
DROP SCHEMA anumate;
