-- A fencing token for the projections: `conveyor replay --rebuild` bumps it in
-- the transaction that empties them, and a reader that started before refuses to
-- commit a batch after it (its lease may have lapsed while it was stalled).
CREATE TABLE persistence_epoch (
    id    integer PRIMARY KEY CHECK (id = 1),
    epoch bigint  NOT NULL
);
INSERT INTO persistence_epoch (id, epoch) VALUES (1, 0);
