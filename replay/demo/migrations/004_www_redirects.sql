-- Changes results without any error: every old page now answers on www., so the
-- stored targets are rewritten; the old code's lookups return other URLs.
UPDATE links SET target_url = replace(target_url, 'https://example.com/', 'https://www.example.com/');
