-- Changes results without any error: the old code shows owners' emails as stored.
UPDATE owners SET email = lower(email);
