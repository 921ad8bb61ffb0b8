-- Run once by the postgres image when its volume is new: the database that
-- holds Rasa's tracker store (the service's own database is POSTGRES_DB).
CREATE DATABASE rasa;
