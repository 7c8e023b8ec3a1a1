-- The demo application: a URL shortener, as production has it before the new release.
CREATE TABLE owners (
    id    serial PRIMARY KEY,
    email text NOT NULL UNIQUE
);

CREATE TABLE links (
    id         serial PRIMARY KEY,
    code       text NOT NULL UNIQUE,
    target_url text NOT NULL,
    owner_id   int NOT NULL REFERENCES owners (id),
    clicks     int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Some history, so that reads have something to return.
INSERT INTO owners (email)
SELECT format('Owner%s@Example.COM', i) FROM generate_series(1, 8) AS i;

INSERT INTO links (code, target_url, owner_id, clicks)
SELECT format('seed%s', i), format('https://example.com/page/%s', i), 1 + (i - 1) % 8, i % 13
FROM generate_series(1, 400) AS i;
