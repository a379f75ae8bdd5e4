DROP FUNCTION gridcall_timers_updated(bigint, bigint);
DROP FUNCTION gridcall_order_version(integer, integer);
