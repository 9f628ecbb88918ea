-- MailMesh schema 11: the bounce class of each reply (issue 11, docs/delivery.md). The name of a
-- MailMesh.Contracts.BounceClass (InvalidRecipient, QuotaIssues, ...), as Delivery's classifier or Queue (MessageExpired)
-- gave it; NULL for deliveries and for results recorded before this migration. Nullable columns without a default: no
-- table rewrite.
ALTER TABLE spool.recipients ADD COLUMN last_bounce_class text;
ALTER TABLE spool.attempts ADD COLUMN bounce_class text;
