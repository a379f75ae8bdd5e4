-- Nothing reads customers in creation order (the list pages by account number), and the index
-- was a trap: a prepared statement planned while the table was empty found `id = $1` as cheap
-- on `(created_at, id)`, a condition on its second column, as on the primary key, and a pooled
-- connection kept that plan, which reads the whole index once customers exist. Without it the
-- primary key is the only index that holds the id.
DROP INDEX customers_created_idx;
