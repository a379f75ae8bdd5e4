-- Routing's recent performance is read from the roll-up cells alone (as of the job's last
-- pass, a second old): the index of the instances the job had not folded yet goes. Its
-- entries outlived their rows until a vacuum (the roll-up flag flips back on every fold), so
-- a probe of "the few dirty rows" walked every instance folded since, and each fold wrote
-- an entry into it.
DROP INDEX sla_timers_dirty_crew_idx;
