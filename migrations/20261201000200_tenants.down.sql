DROP TABLE anumate.tenants;
