DROP TABLE event_streams;
DROP TABLE event_tickets;
