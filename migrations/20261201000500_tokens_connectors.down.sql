DROP TABLE anumate.connectors;
DROP TABLE anumate.capability_tokens;
