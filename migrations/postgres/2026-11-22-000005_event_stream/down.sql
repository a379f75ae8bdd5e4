DROP TABLE event_streams;
DROP TABLE event_tickets;
ALTER TABLE work_order_events ALTER COLUMN id SET DEFAULT nextval('work_order_events_id_seq');
DROP FUNCTION work_order_event_next_id();
