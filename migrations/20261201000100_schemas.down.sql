-- Later migrations' down scripts drop every object in these schemas first.
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
DROP SCHEMA events;
DROP SCHEMA audit;
DROP SCHEMA anumate;
