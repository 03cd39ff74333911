-- migrate:up
CREATE EXTENSION IF NOT EXISTS citext;

-- Quoted because USER is reserved; the Django admin maps an unmanaged model onto it.
CREATE TABLE "user" (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username     citext      NOT NULL,
    email        citext      NOT NULL,
    password     text        NOT NULL,  -- Django hasher format (Argon2id); never leaves the server
    is_active    boolean     NOT NULL DEFAULT true,
    is_staff     boolean     NOT NULL DEFAULT false,
    is_superuser boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_login   timestamptz,
    CONSTRAINT user_username_key UNIQUE (username),
    CONSTRAINT user_email_key UNIQUE (email),
    CONSTRAINT user_username_format CHECK (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
    CONSTRAINT user_email_length CHECK (char_length(email) BETWEEN 3 AND 254)
);

-- migrate:down
DROP TABLE "user";
