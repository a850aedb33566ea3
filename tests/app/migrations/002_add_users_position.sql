-- 002: job title shown in the desktop client's profile view (GET /api/users/me).
ALTER TABLE users ADD COLUMN position TEXT;
