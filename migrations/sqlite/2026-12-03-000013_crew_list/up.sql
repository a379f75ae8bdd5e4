-- A crew's orders, newest first: a crew user's own list and a dispatcher's `?crew_id=` without
-- a status. `work_orders_crew_idx` (crew, status) serves a crew's open orders and its load, but
-- for the whole list the planner had two bad choices: walk `work_orders_created_idx` backwards
-- past every other crew's orders until it found a page of this one's (a crew whose newest
-- orders are old walks most of the table), or fetch every order the crew ever had and sort
-- them (thousands after a year). Here the page is the first entries under the crew.
CREATE INDEX work_orders_crew_created_idx ON work_orders (assigned_crew_id, created_at, id)
    WHERE assigned_crew_id IS NOT NULL;
