DROP VIEW anumate.run_overview;
DROP TABLE anumate.approvals;
DROP TABLE anumate.runs;
DROP TABLE anumate.plans;
DROP TABLE anumate.capsules;
