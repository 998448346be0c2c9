DROP TABLE anumate.roles;
DROP TABLE anumate.team_members;
DROP TABLE anumate.teams;
DROP TABLE anumate.users;
