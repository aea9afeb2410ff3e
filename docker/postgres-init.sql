-- Run once by the postgres image on an empty data volume: one database for
-- Airflow's metadata, one for the drift event store (Alembic migrates it).
CREATE DATABASE airflow OWNER driftwatch;
CREATE DATABASE drift OWNER driftwatch;
