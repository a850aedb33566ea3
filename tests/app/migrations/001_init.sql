-- 001_init: the TimeTracking schema as first deployed.
CREATE TABLE users (
  id            INTEGER PRIMARY KEY,
  name          TEXT    NOT NULL,
  email         TEXT    NOT NULL UNIQUE,
  password_hash TEXT    NOT NULL,
  role          TEXT    NOT NULL DEFAULT 'employee',
  active        INTEGER NOT NULL DEFAULT 1,
  created_at    TEXT    NOT NULL
);

CREATE TABLE projects (
  id         INTEGER PRIMARY KEY,
  name       TEXT    NOT NULL UNIQUE,
  client     TEXT,
  archived   INTEGER NOT NULL DEFAULT 0,
  created_at TEXT    NOT NULL
);

CREATE TABLE time_entries (
  id         INTEGER PRIMARY KEY,
  user_id    INTEGER NOT NULL REFERENCES users(id),
  project_id INTEGER REFERENCES projects(id),
  started_at TEXT    NOT NULL,
  minutes    INTEGER NOT NULL CHECK (minutes > 0),
  note       TEXT,
  created_at TEXT    NOT NULL
);

CREATE INDEX idx_time_entries_user_started ON time_entries(user_id, started_at);
