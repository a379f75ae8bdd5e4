//! Table definitions shared by both backends: only SQL types SQLite and PostgreSQL have in
//! common (UUIDs as text, UTC `Timestamp`, JSON as text).

diesel::table! {
    areas (code) {
        code -> Text,
        name -> Text,
        region_class -> Text,
        parent_code -> Nullable<Text>,
        backup_area_codes -> Text,
        calendar -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    crews (id) {
        id -> Text,
        code -> Text,
        name -> Text,
        kind -> Text,
        area_codes -> Text,
        skills -> Text,
        capacity -> Integer,
        on_duty -> Bool,
        lat -> Nullable<Double>,
        lon -> Nullable<Double>,
        located_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        display_name -> Text,
        email -> Nullable<Text>,
        crew_id -> Nullable<Text>,
        area_codes -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        user_id -> Text,
        family_id -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        family_started_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_throttles (username, address) {
        username -> Text,
        address -> Text,
        failures -> Integer,
        pending -> Integer,
        window_started_at -> Timestamp,
    }
}

diesel::table! {
    customers (id) {
        id -> Text,
        account_no -> Text,
        name -> Text,
        phone -> Text,
        email -> Nullable<Text>,
        address -> Text,
        area_code -> Text,
        lat -> Nullable<Double>,
        lon -> Nullable<Double>,
        tier -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    work_orders (seq) {
        seq -> BigInt,
        id -> Text,
        number -> Nullable<Text>,
        kind -> Text,
        category -> Text,
        grade -> Nullable<Text>,
        priority -> Text,
        channel -> Text,
        status -> Text,
        suspended_from -> Nullable<Text>,
        suspend_until -> Nullable<Timestamp>,
        customer_id -> Nullable<Text>,
        caller_name -> Nullable<Text>,
        caller_phone -> Nullable<Text>,
        area_code -> Text,
        address -> Nullable<Text>,
        lat -> Nullable<Double>,
        lon -> Nullable<Double>,
        description -> Text,
        resolution -> Nullable<Text>,
        assigned_crew_id -> Nullable<Text>,
        master_id -> Nullable<Text>,
        subject_crew_id -> Nullable<Text>,
        outage_id -> Nullable<Text>,
        returned_crew_ids -> Text,
        urge_count -> Integer,
        reopen_count -> Integer,
        satisfaction -> Nullable<Text>,
        version -> Integer,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    work_order_events (id) {
        id -> BigInt,
        work_order_id -> Text,
        #[sql_name = "type"]
        event_type -> Text,
        actor_id -> Nullable<Text>,
        actor_username -> Nullable<Text>,
        actor_role -> Nullable<Text>,
        from_status -> Nullable<Text>,
        to_status -> Nullable<Text>,
        reason -> Nullable<Text>,
        data -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Text,
        key -> Text,
        request_hash -> Text,
        state -> Text,
        response_status -> Nullable<Integer>,
        work_order_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    areas,
    crews,
    users,
    refresh_tokens,
    login_throttles,
    customers,
    work_orders,
    work_order_events,
    idempotency_keys,
);

diesel::table! {
    sla_policy_versions (seq) {
        seq -> BigInt,
        version -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sla_timers (id) {
        id -> Text,
        work_order_id -> Text,
        stage -> Text,
        instance -> Integer,
        policy_version -> Text,
        rule_name -> Text,
        target -> Text,
        target_seconds -> BigInt,
        calendar -> Text,
        started_at -> Timestamp,
        due_at -> Nullable<Timestamp>,
        warn_at -> Nullable<Timestamp>,
        warned_at -> Nullable<Timestamp>,
        paused_seconds -> BigInt,
        excused_seconds -> BigInt,
        state -> Text,
        ended_at -> Nullable<Timestamp>,
        breached_at -> Nullable<Timestamp>,
        escalation_level -> Integer,
        next_fire_at -> Nullable<Timestamp>,
        holds -> Text,
        area_code -> Text,
        version -> Integer,
        warn_fraction -> Double,
        escalations -> Text,
        credited_crew_id -> Nullable<Text>,
        wall_seconds -> Nullable<BigInt>,
        sla_seconds -> Nullable<BigInt>,
        kind -> Text,
        priority -> Text,
        rollup_dirty -> Bool,
        rollup_applied -> Nullable<Text>,
        holiday_data_missing -> Nullable<Text>,
    }
}

diesel::table! {
    sla_pauses (id) {
        id -> Text,
        area_codes -> Text,
        starts_at -> Timestamp,
        ends_at -> Nullable<Timestamp>,
        reason -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        ended_by -> Nullable<Text>,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Text,
        message_id -> Text,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        work_order_id -> Nullable<Text>,
        digest_key -> Nullable<Text>,
        state -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(work_orders, sla_timers);
// The opening read of a create (`work_orders::opening_facts`): subqueries under the area.
diesel::allow_tables_to_appear_in_same_query!(areas, outages);
diesel::allow_tables_to_appear_in_same_query!(areas, sla_pauses);
// An action's read of its order's timers (`timers::of_order_noting_pauses`): whether any
// force-majeure window could apply, as a subquery.
diesel::allow_tables_to_appear_in_same_query!(sla_timers, sla_pauses);
// An action's one read of its order (`work_orders::find_for_action`): the order, its timers,
// and as subqueries under it the force-majeure windows and its holder's last resolve.
diesel::allow_tables_to_appear_in_same_query!(work_orders, sla_pauses);
diesel::allow_tables_to_appear_in_same_query!(sla_timers, crew_credits);
diesel::allow_tables_to_appear_in_same_query!(sla_timers, areas);
diesel::allow_tables_to_appear_in_same_query!(sla_timers, customers);
diesel::allow_tables_to_appear_in_same_query!(crew_credits, areas);

diesel::table! {
    outages (id) {
        id -> Text,
        area_codes -> Text,
        cause -> Text,
        feeder -> Nullable<Text>,
        started_at -> Timestamp,
        estimated_restore_at -> Nullable<Timestamp>,
        master_id -> Text,
        status -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        cancel_reason -> Nullable<Text>,
    }
}

diesel::table! {
    event_tickets (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    event_streams (id) {
        id -> Text,
        user_id -> Text,
        opened_at -> Timestamp,
        seen_at -> Timestamp,
    }
}

diesel::table! {
    crew_credits (id) {
        id -> Text,
        crew_id -> Text,
        fact -> Text,
        work_order_id -> Text,
        at -> Timestamp,
        satisfaction -> Nullable<Text>,
        reopened_at -> Nullable<Timestamp>,
        repeat_of_at -> Nullable<Timestamp>,
        rollup_dirty -> Bool,
        rollup_applied -> Nullable<Text>,
    }
}

diesel::table! {
    sla_rollups (grain, period, area_code, kind, priority, stage, crew_id) {
        grain -> Text,
        period -> Text,
        area_code -> Text,
        kind -> Text,
        priority -> Text,
        stage -> Text,
        crew_id -> Text,
        met -> BigInt,
        breached -> BigInt,
        stopped -> BigInt,
        excused -> BigInt,
        minutes -> Text,
    }
}

diesel::table! {
    credit_rollups (grain, period, crew_id) {
        grain -> Text,
        period -> Text,
        crew_id -> Text,
        dispatches -> BigInt,
        returns -> BigInt,
        callbacks -> BigInt,
        callbacks_good -> BigInt,
        complaints -> BigInt,
        praise -> BigInt,
        resolves -> BigInt,
        resolves_reopened -> BigInt,
    }
}

diesel::table! {
    rollup_lock (id) {
        id -> Integer,
        ran_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    scorecards (period) {
        period -> Text,
        status -> Text,
        closed_at -> Nullable<Timestamp>,
        closed_by -> Nullable<Text>,
        rows -> Text,
        version -> Integer,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    scorecard_audit (id) {
        id -> Text,
        period -> Text,
        action -> Text,
        actor_id -> Text,
        reason -> Nullable<Text>,
        at -> Timestamp,
    }
}

diesel::table! {
    appeals (id) {
        id -> Text,
        work_order_id -> Text,
        timer_id -> Text,
        stage -> Text,
        instance -> Integer,
        area_code -> Text,
        crew_id -> Nullable<Text>,
        period -> Text,
        reason_code -> Text,
        reason -> Text,
        status -> Text,
        filed_by -> Text,
        filed_at -> Timestamp,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        decision_note -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(appeals, work_orders);
diesel::allow_tables_to_appear_in_same_query!(appeals, sla_timers);
diesel::allow_tables_to_appear_in_same_query!(crew_credits, work_orders);
