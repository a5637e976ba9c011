-- The global room always exists: every guest and account can join it without an invite.
INSERT INTO "Room" ("id", "slug", "name", "visibility", "capacity", "createdAt", "updatedAt")
VALUES (gen_random_uuid(), 'global', 'Global', 'PUBLIC', 64, now(), now())
ON CONFLICT ("slug") DO NOTHING;
