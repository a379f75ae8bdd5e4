-- An action on PostgreSQL's write sessions is one statement without a transaction: the
-- timer's guarded update, the event, the crew credit and new timers as data-modifying `WITH`
-- queries in front of the order's `UPDATE … RETURNING`. Those queries write whether or not the
-- guarded updates matched, so the statement must fail as a whole when the order or the timer
-- moved on since the action read them. These raise inside it, which undoes every part; the
-- constraint name tells the caller which one moved (SQLite writes inside a transaction and
-- has no use for them).

-- The order's version as stored, when it is the one the action read.
CREATE FUNCTION gridcall_order_version(stored integer, read integer) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF stored IS DISTINCT FROM read THEN
        RAISE EXCEPTION 'work order at version %, read at %', stored, read
            USING ERRCODE = 'check_violation', CONSTRAINT = 'work_order_version_read';
    END IF;
    RETURN stored;
END
$$;

-- The number of timers the statement updated, when it is every one it meant to.
CREATE FUNCTION gridcall_timers_updated(updated bigint, meant bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF updated IS DISTINCT FROM meant THEN
        RAISE EXCEPTION '% of % timers updated', updated, meant
            USING ERRCODE = 'check_violation', CONSTRAINT = 'sla_timer_version_read';
    END IF;
    RETURN updated;
END
$$;
