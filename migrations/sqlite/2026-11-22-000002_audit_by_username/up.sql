CREATE INDEX audit_events_subject_username ON audit_events (subject_username, id);
