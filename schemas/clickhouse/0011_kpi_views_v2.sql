-- KPIs of contract v2 (EVENTS.md version 2). The executable definition is schemas/kpi.py
-- (reference_kpis); tests hold these views equal to it. All instants are compared in whole
-- milliseconds (DateTime64(3) as Int64); periods are counted in Asia/Ho_Chi_Minh.
--
-- * dossier_lifecycle: one row per dossier, written by the worker as its events arrive;
-- * service_offering_history: each service's state over time, from offering_events;
-- * kpi_facts_<grain>: every counted fact of a period, one row each;
-- * kpi_<grain>: one row per agency and period plus one per period for the province
--   (agency_code NULL), with every KPI of EVENTS.md, the counts behind each, and the targets.
-- The v1 columns full_process_share and service_prefill_coverage are gone: their honest
-- successors are full_process_offering_rate and prefill_design_coverage.

-- The lifecycle of each dossier (agency x dossier_id), as schemas/lifecycle.py reads it from
-- the dossier's events: the facts of its first `submitted` (by occurred_at, ties: the smaller
-- event_id text), its first end (completed, rejected or withdrawn), its first `paid`, and its
-- pauses (the union of the spans from each supplement_requested to the next
-- supplement_received; a NULL end: not answered yet), and what they imply (effective_due_at,
-- paused_ms). Empty strings and NULLs where the
-- dossier has no such event yet. `version` is the number of distinct events applied, so the
-- row with the highest version is the complete state: read with FINAL.
CREATE TABLE IF NOT EXISTS dossier_lifecycle
(
    agency_code       LowCardinality(String),
    dossier_id        String,
    procedure_code    LowCardinality(String),
    submitted_at      Nullable(DateTime64(3, 'UTC')),
    submission_schema LowCardinality(String),  -- service/1 | service/2 | '' (no submission)
    channel           LowCardinality(String),  -- online | counter | postal | ''
    service_level     LowCardinality(String),  -- full_process | partial | '' (not online)
    fields_total      UInt32,
    fields_prefilled  UInt32,
    due_at            Nullable(DateTime64(3, 'UTC')),
    digitized         Nullable(UInt8),
    reused_components UInt32,
    ended_at          Nullable(DateTime64(3, 'UTC')),
    end_type          LowCardinality(String),  -- completed | rejected | withdrawn | ''
    end_schema        LowCardinality(String),
    on_time           Nullable(UInt8),         -- the completing event's own flag (service/1)
    result_electronic Nullable(UInt8),
    paid_at           Nullable(DateTime64(3, 'UTC')),
    payment_channel   LowCardinality(String),  -- online | counter | ''
    pause_starts      Array(DateTime64(3, 'UTC')),
    pause_ends        Array(Nullable(DateTime64(3, 'UTC'))),
    -- service/2: the instant after which the dossier is overdue (due_at pushed back by the
    -- pauses that began by the deadline; NULL while such a pause has no reply); a completion
    -- at or before it is on time (schemas/lifecycle.py effective_due)
    effective_due_at  Nullable(DateTime64(3, 'UTC')),
    paused_ms         UInt64,                  -- pause time before the end (0 while open)
    version           UInt64,
    updated_at        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (agency_code, dossier_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- The state of every service (agency x procedure) over time: each offering event holds from its
-- occurred_at (valid_from) until the next one's (valid_to, exclusive; NULL for the latest).
-- Ties on occurred_at: the later Kafka offset (published later) holds.
CREATE OR REPLACE VIEW service_offering_history AS
SELECT
    toString(agency_code) AS agency_code,
    toString(procedure_code) AS procedure_code,
    toString(level) AS level,
    prefill_designed,
    occurred_at AS valid_from,
    nullIf(leadInFrame(occurred_at, 1, toDateTime64(0, 3, 'UTC')) OVER w,
           toDateTime64(0, 3, 'UTC')) AS valid_to,
    event_id
FROM offering_events FINAL
WINDOW w AS (PARTITION BY agency_code, procedure_code ORDER BY occurred_at, _partition, _offset
             ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING);

-- The bounds of the KPI rows: the first and the last instant of any accepted event.
CREATE OR REPLACE VIEW kpi_bounds AS
SELECT min(lo) AS lo_ms, max(hi) AS hi_ms
FROM
(
    SELECT minOrNull(toUnixTimestamp64Milli(occurred_at)) AS lo,
           maxOrNull(toUnixTimestamp64Milli(occurred_at)) AS hi
    FROM inspection_events
    UNION ALL
    SELECT minOrNull(toUnixTimestamp64Milli(occurred_at)),
           maxOrNull(toUnixTimestamp64Milli(occurred_at))
    FROM service_events
    UNION ALL
    SELECT minOrNull(toUnixTimestamp64Milli(occurred_at)),
           maxOrNull(toUnixTimestamp64Milli(occurred_at))
    FROM offering_events
);

-- @each grain
-- The counted facts of each agency, @grain@ and service, summed: dossier submissions, first
-- payments, completions and open dossiers at the period's end; concluded inspections and
-- activities; services existing at the period's end. `service` is `agency:procedure` of an
-- online submission, '' for every other fact.
CREATE OR REPLACE VIEW kpi_facts_@grain@ AS
SELECT agency_code, period_start, service,
    sum(inspections_online) AS inspections_online,
    sum(inspections_hybrid) AS inspections_hybrid,
    sum(inspections_in_person) AS inspections_in_person,
    sum(inspections_unclassified) AS inspections_unclassified,
    sum(inspections_thanh_tra) AS inspections_thanh_tra,
    sum(activities) AS activities,
    sum(activities_online) AS activities_online,
    sum(dossiers_submitted) AS dossiers_submitted,
    sum(online_submissions) AS online_submissions,
    sum(online_full_process) AS online_full_process,
    sum(dossiers_reusing) AS dossiers_reusing,
    sum(dossiers_v2) AS dossiers_v2,
    sum(dossiers_digitized) AS dossiers_digitized,
    sum(online_prefilled) AS online_prefilled,
    sum(form_fields_total) AS form_fields_total,
    sum(form_fields_prefilled) AS form_fields_prefilled,
    sum(services_existing) AS services_existing,
    sum(services_eligible) AS services_eligible,
    sum(services_full_process) AS services_full_process,
    sum(services_online) AS services_online,
    sum(services_prefill_designed) AS services_prefill_designed,
    sum(dossiers_completed) AS dossiers_completed,
    sum(dossiers_completed_on_time) AS dossiers_completed_on_time,
    sum(dossiers_open) AS dossiers_open,
    sum(dossiers_overdue) AS dossiers_overdue,
    sum(dossiers_resolved) AS dossiers_resolved,
    sum(resolution_ms_total) AS resolution_ms_total,
    sum(completions_v2) AS completions_v2,
    sum(results_electronic) AS results_electronic,
    sum(payments) AS payments,
    sum(payments_online) AS payments_online
FROM
(
    SELECT
        toString(agency_code) AS agency_code,
        @trunc@(toDate(assumeNotNull(submitted_at), 'Asia/Ho_Chi_Minh')) AS period_start,
        if(channel = 'online', concat(toString(agency_code), ':', toString(procedure_code)), '') AS service,
        toUInt64(0) AS inspections_online,
        toUInt64(0) AS inspections_hybrid,
        toUInt64(0) AS inspections_in_person,
        toUInt64(0) AS inspections_unclassified,
        toUInt64(0) AS inspections_thanh_tra,
        toUInt64(0) AS activities,
        toUInt64(0) AS activities_online,
        toUInt64(1) AS dossiers_submitted,
        toUInt64(channel = 'online') AS online_submissions,
        toUInt64(channel = 'online' AND service_level = 'full_process') AS online_full_process,
        toUInt64(reused_components >= 1 OR (channel = 'online' AND fields_prefilled >= 1)) AS dossiers_reusing,
        toUInt64(submission_schema = 'service/2') AS dossiers_v2,
        toUInt64(submission_schema = 'service/2' AND digitized = 1) AS dossiers_digitized,
        toUInt64(channel = 'online' AND fields_prefilled >= 1) AS online_prefilled,
        toUInt64(if(channel = 'online', fields_total, 0)) AS form_fields_total,
        toUInt64(if(channel = 'online', fields_prefilled, 0)) AS form_fields_prefilled,
        toUInt64(0) AS services_existing,
        toUInt64(0) AS services_eligible,
        toUInt64(0) AS services_full_process,
        toUInt64(0) AS services_online,
        toUInt64(0) AS services_prefill_designed,
        toUInt64(0) AS dossiers_completed,
        toUInt64(0) AS dossiers_completed_on_time,
        toUInt64(0) AS dossiers_open,
        toUInt64(0) AS dossiers_overdue,
        toUInt64(0) AS dossiers_resolved,
        toInt64(0) AS resolution_ms_total,
        toUInt64(0) AS completions_v2,
        toUInt64(0) AS results_electronic,
        toUInt64(0) AS payments,
        toUInt64(0) AS payments_online
    FROM dossier_lifecycle FINAL
    WHERE submitted_at IS NOT NULL
)
GROUP BY agency_code, period_start, service
UNION ALL
SELECT agency_code, period_start, service,
    sum(inspections_online) AS inspections_online,
    sum(inspections_hybrid) AS inspections_hybrid,
    sum(inspections_in_person) AS inspections_in_person,
    sum(inspections_unclassified) AS inspections_unclassified,
    sum(inspections_thanh_tra) AS inspections_thanh_tra,
    sum(activities) AS activities,
    sum(activities_online) AS activities_online,
    sum(dossiers_submitted) AS dossiers_submitted,
    sum(online_submissions) AS online_submissions,
    sum(online_full_process) AS online_full_process,
    sum(dossiers_reusing) AS dossiers_reusing,
    sum(dossiers_v2) AS dossiers_v2,
    sum(dossiers_digitized) AS dossiers_digitized,
    sum(online_prefilled) AS online_prefilled,
    sum(form_fields_total) AS form_fields_total,
    sum(form_fields_prefilled) AS form_fields_prefilled,
    sum(services_existing) AS services_existing,
    sum(services_eligible) AS services_eligible,
    sum(services_full_process) AS services_full_process,
    sum(services_online) AS services_online,
    sum(services_prefill_designed) AS services_prefill_designed,
    sum(dossiers_completed) AS dossiers_completed,
    sum(dossiers_completed_on_time) AS dossiers_completed_on_time,
    sum(dossiers_open) AS dossiers_open,
    sum(dossiers_overdue) AS dossiers_overdue,
    sum(dossiers_resolved) AS dossiers_resolved,
    sum(resolution_ms_total) AS resolution_ms_total,
    sum(completions_v2) AS completions_v2,
    sum(results_electronic) AS results_electronic,
    sum(payments) AS payments,
    sum(payments_online) AS payments_online
FROM
(
    SELECT
        toString(agency_code) AS agency_code,
        @trunc@(toDate(assumeNotNull(paid_at), 'Asia/Ho_Chi_Minh')) AS period_start,
        '' AS service,
        toUInt64(0) AS inspections_online,
        toUInt64(0) AS inspections_hybrid,
        toUInt64(0) AS inspections_in_person,
        toUInt64(0) AS inspections_unclassified,
        toUInt64(0) AS inspections_thanh_tra,
        toUInt64(0) AS activities,
        toUInt64(0) AS activities_online,
        toUInt64(0) AS dossiers_submitted,
        toUInt64(0) AS online_submissions,
        toUInt64(0) AS online_full_process,
        toUInt64(0) AS dossiers_reusing,
        toUInt64(0) AS dossiers_v2,
        toUInt64(0) AS dossiers_digitized,
        toUInt64(0) AS online_prefilled,
        toUInt64(0) AS form_fields_total,
        toUInt64(0) AS form_fields_prefilled,
        toUInt64(0) AS services_existing,
        toUInt64(0) AS services_eligible,
        toUInt64(0) AS services_full_process,
        toUInt64(0) AS services_online,
        toUInt64(0) AS services_prefill_designed,
        toUInt64(0) AS dossiers_completed,
        toUInt64(0) AS dossiers_completed_on_time,
        toUInt64(0) AS dossiers_open,
        toUInt64(0) AS dossiers_overdue,
        toUInt64(0) AS dossiers_resolved,
        toInt64(0) AS resolution_ms_total,
        toUInt64(0) AS completions_v2,
        toUInt64(0) AS results_electronic,
        toUInt64(1) AS payments,
        toUInt64(payment_channel = 'online') AS payments_online
    FROM dossier_lifecycle FINAL
    WHERE paid_at IS NOT NULL
)
GROUP BY agency_code, period_start, service
UNION ALL
SELECT agency_code, period_start, service,
    sum(inspections_online) AS inspections_online,
    sum(inspections_hybrid) AS inspections_hybrid,
    sum(inspections_in_person) AS inspections_in_person,
    sum(inspections_unclassified) AS inspections_unclassified,
    sum(inspections_thanh_tra) AS inspections_thanh_tra,
    sum(activities) AS activities,
    sum(activities_online) AS activities_online,
    sum(dossiers_submitted) AS dossiers_submitted,
    sum(online_submissions) AS online_submissions,
    sum(online_full_process) AS online_full_process,
    sum(dossiers_reusing) AS dossiers_reusing,
    sum(dossiers_v2) AS dossiers_v2,
    sum(dossiers_digitized) AS dossiers_digitized,
    sum(online_prefilled) AS online_prefilled,
    sum(form_fields_total) AS form_fields_total,
    sum(form_fields_prefilled) AS form_fields_prefilled,
    sum(services_existing) AS services_existing,
    sum(services_eligible) AS services_eligible,
    sum(services_full_process) AS services_full_process,
    sum(services_online) AS services_online,
    sum(services_prefill_designed) AS services_prefill_designed,
    sum(dossiers_completed) AS dossiers_completed,
    sum(dossiers_completed_on_time) AS dossiers_completed_on_time,
    sum(dossiers_open) AS dossiers_open,
    sum(dossiers_overdue) AS dossiers_overdue,
    sum(dossiers_resolved) AS dossiers_resolved,
    sum(resolution_ms_total) AS resolution_ms_total,
    sum(completions_v2) AS completions_v2,
    sum(results_electronic) AS results_electronic,
    sum(payments) AS payments,
    sum(payments_online) AS payments_online
FROM
(
    SELECT
        agency_code AS agency_code,
        @trunc@(toDate(assumeNotNull(ended_at), 'Asia/Ho_Chi_Minh')) AS period_start,
        '' AS service,
        toUInt64(0) AS inspections_online,
        toUInt64(0) AS inspections_hybrid,
        toUInt64(0) AS inspections_in_person,
        toUInt64(0) AS inspections_unclassified,
        toUInt64(0) AS inspections_thanh_tra,
        toUInt64(0) AS activities,
        toUInt64(0) AS activities_online,
        toUInt64(0) AS dossiers_submitted,
        toUInt64(0) AS online_submissions,
        toUInt64(0) AS online_full_process,
        toUInt64(0) AS dossiers_reusing,
        toUInt64(0) AS dossiers_v2,
        toUInt64(0) AS dossiers_digitized,
        toUInt64(0) AS online_prefilled,
        toUInt64(0) AS form_fields_total,
        toUInt64(0) AS form_fields_prefilled,
        toUInt64(0) AS services_existing,
        toUInt64(0) AS services_eligible,
        toUInt64(0) AS services_full_process,
        toUInt64(0) AS services_online,
        toUInt64(0) AS services_prefill_designed,
        toUInt64(submission_schema = 'service/2' OR on_time IS NOT NULL) AS dossiers_completed,
        toUInt64(if(submission_schema = 'service/2', effective_due_at IS NULL OR end_ms <= toUnixTimestamp64Milli(assumeNotNull(effective_due_at)), on_time = 1)) AS dossiers_completed_on_time,
        toUInt64(0) AS dossiers_open,
        toUInt64(0) AS dossiers_overdue,
        toUInt64(submission_schema = 'service/2') AS dossiers_resolved,
        toInt64(if(submission_schema = 'service/2', end_ms - submitted_ms - paused_ms, 0)) AS resolution_ms_total,
        toUInt64(end_schema = 'service/2') AS completions_v2,
        toUInt64(end_schema = 'service/2' AND result_electronic = 1) AS results_electronic,
        toUInt64(0) AS payments,
        toUInt64(0) AS payments_online
    FROM
    (
        SELECT
            toString(agency_code) AS agency_code, ended_at, submission_schema, on_time,
            effective_due_at, paused_ms,
            end_schema, result_electronic,
            ifNull(toUnixTimestamp64Milli(ended_at), -1) AS end_ms,
            ifNull(toUnixTimestamp64Milli(submitted_at), -1) AS submitted_ms
        FROM dossier_lifecycle FINAL
        WHERE end_type = 'completed'
    )
)
GROUP BY agency_code, period_start, service
UNION ALL
SELECT agency_code, period_start, service,
    sum(inspections_online) AS inspections_online,
    sum(inspections_hybrid) AS inspections_hybrid,
    sum(inspections_in_person) AS inspections_in_person,
    sum(inspections_unclassified) AS inspections_unclassified,
    sum(inspections_thanh_tra) AS inspections_thanh_tra,
    sum(activities) AS activities,
    sum(activities_online) AS activities_online,
    sum(dossiers_submitted) AS dossiers_submitted,
    sum(online_submissions) AS online_submissions,
    sum(online_full_process) AS online_full_process,
    sum(dossiers_reusing) AS dossiers_reusing,
    sum(dossiers_v2) AS dossiers_v2,
    sum(dossiers_digitized) AS dossiers_digitized,
    sum(online_prefilled) AS online_prefilled,
    sum(form_fields_total) AS form_fields_total,
    sum(form_fields_prefilled) AS form_fields_prefilled,
    sum(services_existing) AS services_existing,
    sum(services_eligible) AS services_eligible,
    sum(services_full_process) AS services_full_process,
    sum(services_online) AS services_online,
    sum(services_prefill_designed) AS services_prefill_designed,
    sum(dossiers_completed) AS dossiers_completed,
    sum(dossiers_completed_on_time) AS dossiers_completed_on_time,
    sum(dossiers_open) AS dossiers_open,
    sum(dossiers_overdue) AS dossiers_overdue,
    sum(dossiers_resolved) AS dossiers_resolved,
    sum(resolution_ms_total) AS resolution_ms_total,
    sum(completions_v2) AS completions_v2,
    sum(results_electronic) AS results_electronic,
    sum(payments) AS payments,
    sum(payments_online) AS payments_online
FROM
(
    SELECT
        agency_code AS agency_code,
        e - @interval@(1) AS period_start,
        '' AS service,
        toUInt64(0) AS inspections_online,
        toUInt64(0) AS inspections_hybrid,
        toUInt64(0) AS inspections_in_person,
        toUInt64(0) AS inspections_unclassified,
        toUInt64(0) AS inspections_thanh_tra,
        toUInt64(0) AS activities,
        toUInt64(0) AS activities_online,
        toUInt64(0) AS dossiers_submitted,
        toUInt64(0) AS online_submissions,
        toUInt64(0) AS online_full_process,
        toUInt64(0) AS dossiers_reusing,
        toUInt64(0) AS dossiers_v2,
        toUInt64(0) AS dossiers_digitized,
        toUInt64(0) AS online_prefilled,
        toUInt64(0) AS form_fields_total,
        toUInt64(0) AS form_fields_prefilled,
        toUInt64(0) AS services_existing,
        toUInt64(0) AS services_eligible,
        toUInt64(0) AS services_full_process,
        toUInt64(0) AS services_online,
        toUInt64(0) AS services_prefill_designed,
        toUInt64(0) AS dossiers_completed,
        toUInt64(0) AS dossiers_completed_on_time,
        toUInt64(1) AS dossiers_open,
        toUInt64(effective_ms >= 0 AND e_ms > effective_ms) AS dossiers_overdue,
        toUInt64(0) AS dossiers_resolved,
        toInt64(0) AS resolution_ms_total,
        toUInt64(0) AS completions_v2,
        toUInt64(0) AS results_electronic,
        toUInt64(0) AS payments,
        toUInt64(0) AS payments_online
    FROM
    (
        SELECT
            agency_code, effective_ms, submitted_ms, end_ms, first_period, last_period,
            submitted_period + @interval@(k) AS e,
            toInt64(toUnixTimestamp(toDateTime(e, 'Asia/Ho_Chi_Minh'))) * 1000 AS e_ms
        FROM
        (
            SELECT
                toString(agency_code) AS agency_code,
                ifNull(toUnixTimestamp64Milli(submitted_at), -1) AS submitted_ms,
                ifNull(toUnixTimestamp64Milli(ended_at), -1) AS end_ms,
                -- overdue at E exactly when E > effective_due_at (-1: never while unanswered)
                ifNull(toUnixTimestamp64Milli(effective_due_at), -1) AS effective_ms,
                @trunc@(toDate(toDateTime(intDiv((SELECT lo_ms FROM kpi_bounds), 1000), 'UTC'), 'Asia/Ho_Chi_Minh')) AS first_period,
                @trunc@(toDate(toDateTime(intDiv((SELECT hi_ms FROM kpi_bounds), 1000), 'UTC'), 'Asia/Ho_Chi_Minh')) AS last_period,
                @trunc@(toDate(assumeNotNull(submitted_at), 'Asia/Ho_Chi_Minh')) AS submitted_period,
                -- candidate period ends E = the k-th period start after the submission's
                range(1, toUInt64(greatest(0, dateDiff('@grain@', submitted_period,
                    if(end_ms < 0, last_period,
                       least(@trunc@(toDate(toDateTime(intDiv(end_ms, 1000), 'UTC'), 'Asia/Ho_Chi_Minh')), last_period)))) + 2)) AS ks
            FROM dossier_lifecycle FINAL
            -- service/2 dossiers still open at the end of their submission's period or later
            WHERE submission_schema = 'service/2' AND due_at IS NOT NULL
              AND (ended_at IS NULL OR end_ms >= toInt64(toUnixTimestamp(toDateTime(submitted_period + @interval@(1), 'Asia/Ho_Chi_Minh'))) * 1000)
        )
        ARRAY JOIN ks AS k
    )
    -- open at E: submitted before E, no end before E; P (E's period) within the range
    WHERE e_ms > submitted_ms AND (end_ms < 0 OR e_ms <= end_ms)
      AND e - @interval@(1) >= first_period AND e - @interval@(1) <= last_period
)
GROUP BY agency_code, period_start, service
UNION ALL
SELECT agency_code, period_start, service,
    sum(inspections_online) AS inspections_online,
    sum(inspections_hybrid) AS inspections_hybrid,
    sum(inspections_in_person) AS inspections_in_person,
    sum(inspections_unclassified) AS inspections_unclassified,
    sum(inspections_thanh_tra) AS inspections_thanh_tra,
    sum(activities) AS activities,
    sum(activities_online) AS activities_online,
    sum(dossiers_submitted) AS dossiers_submitted,
    sum(online_submissions) AS online_submissions,
    sum(online_full_process) AS online_full_process,
    sum(dossiers_reusing) AS dossiers_reusing,
    sum(dossiers_v2) AS dossiers_v2,
    sum(dossiers_digitized) AS dossiers_digitized,
    sum(online_prefilled) AS online_prefilled,
    sum(form_fields_total) AS form_fields_total,
    sum(form_fields_prefilled) AS form_fields_prefilled,
    sum(services_existing) AS services_existing,
    sum(services_eligible) AS services_eligible,
    sum(services_full_process) AS services_full_process,
    sum(services_online) AS services_online,
    sum(services_prefill_designed) AS services_prefill_designed,
    sum(dossiers_completed) AS dossiers_completed,
    sum(dossiers_completed_on_time) AS dossiers_completed_on_time,
    sum(dossiers_open) AS dossiers_open,
    sum(dossiers_overdue) AS dossiers_overdue,
    sum(dossiers_resolved) AS dossiers_resolved,
    sum(resolution_ms_total) AS resolution_ms_total,
    sum(completions_v2) AS completions_v2,
    sum(results_electronic) AS results_electronic,
    sum(payments) AS payments,
    sum(payments_online) AS payments_online
FROM
(
    SELECT
        toString(agency_code) AS agency_code,
        @trunc@(toDate(concluded_at, 'Asia/Ho_Chi_Minh')) AS period_start,
        '' AS service,
        toUInt64(kind != 'thanh_tra' AND classification = 'online') AS inspections_online,
        toUInt64(kind != 'thanh_tra' AND classification = 'hybrid') AS inspections_hybrid,
        toUInt64(kind != 'thanh_tra' AND classification = 'in_person') AS inspections_in_person,
        toUInt64(kind != 'thanh_tra' AND classification = 'unclassified') AS inspections_unclassified,
        toUInt64(kind = 'thanh_tra') AS inspections_thanh_tra,
        toUInt64(0) AS activities,
        toUInt64(0) AS activities_online,
        toUInt64(0) AS dossiers_submitted,
        toUInt64(0) AS online_submissions,
        toUInt64(0) AS online_full_process,
        toUInt64(0) AS dossiers_reusing,
        toUInt64(0) AS dossiers_v2,
        toUInt64(0) AS dossiers_digitized,
        toUInt64(0) AS online_prefilled,
        toUInt64(0) AS form_fields_total,
        toUInt64(0) AS form_fields_prefilled,
        toUInt64(0) AS services_existing,
        toUInt64(0) AS services_eligible,
        toUInt64(0) AS services_full_process,
        toUInt64(0) AS services_online,
        toUInt64(0) AS services_prefill_designed,
        toUInt64(0) AS dossiers_completed,
        toUInt64(0) AS dossiers_completed_on_time,
        toUInt64(0) AS dossiers_open,
        toUInt64(0) AS dossiers_overdue,
        toUInt64(0) AS dossiers_resolved,
        toInt64(0) AS resolution_ms_total,
        toUInt64(0) AS completions_v2,
        toUInt64(0) AS results_electronic,
        toUInt64(0) AS payments,
        toUInt64(0) AS payments_online
    FROM inspection_classifications FINAL
    WHERE cancelled = 0 AND concluded_at IS NOT NULL
)
GROUP BY agency_code, period_start, service
UNION ALL
SELECT agency_code, period_start, service,
    sum(inspections_online) AS inspections_online,
    sum(inspections_hybrid) AS inspections_hybrid,
    sum(inspections_in_person) AS inspections_in_person,
    sum(inspections_unclassified) AS inspections_unclassified,
    sum(inspections_thanh_tra) AS inspections_thanh_tra,
    sum(activities) AS activities,
    sum(activities_online) AS activities_online,
    sum(dossiers_submitted) AS dossiers_submitted,
    sum(online_submissions) AS online_submissions,
    sum(online_full_process) AS online_full_process,
    sum(dossiers_reusing) AS dossiers_reusing,
    sum(dossiers_v2) AS dossiers_v2,
    sum(dossiers_digitized) AS dossiers_digitized,
    sum(online_prefilled) AS online_prefilled,
    sum(form_fields_total) AS form_fields_total,
    sum(form_fields_prefilled) AS form_fields_prefilled,
    sum(services_existing) AS services_existing,
    sum(services_eligible) AS services_eligible,
    sum(services_full_process) AS services_full_process,
    sum(services_online) AS services_online,
    sum(services_prefill_designed) AS services_prefill_designed,
    sum(dossiers_completed) AS dossiers_completed,
    sum(dossiers_completed_on_time) AS dossiers_completed_on_time,
    sum(dossiers_open) AS dossiers_open,
    sum(dossiers_overdue) AS dossiers_overdue,
    sum(dossiers_resolved) AS dossiers_resolved,
    sum(resolution_ms_total) AS resolution_ms_total,
    sum(completions_v2) AS completions_v2,
    sum(results_electronic) AS results_electronic,
    sum(payments) AS payments,
    sum(payments_online) AS payments_online
FROM
(
    SELECT
        toString(c.agency_code) AS agency_code,
        @trunc@(toDate(activity_at, 'Asia/Ho_Chi_Minh')) AS period_start,
        '' AS service,
        toUInt64(0) AS inspections_online,
        toUInt64(0) AS inspections_hybrid,
        toUInt64(0) AS inspections_in_person,
        toUInt64(0) AS inspections_unclassified,
        toUInt64(0) AS inspections_thanh_tra,
        toUInt64(1) AS activities,
        toUInt64(activity_online = 1) AS activities_online,
        toUInt64(0) AS dossiers_submitted,
        toUInt64(0) AS online_submissions,
        toUInt64(0) AS online_full_process,
        toUInt64(0) AS dossiers_reusing,
        toUInt64(0) AS dossiers_v2,
        toUInt64(0) AS dossiers_digitized,
        toUInt64(0) AS online_prefilled,
        toUInt64(0) AS form_fields_total,
        toUInt64(0) AS form_fields_prefilled,
        toUInt64(0) AS services_existing,
        toUInt64(0) AS services_eligible,
        toUInt64(0) AS services_full_process,
        toUInt64(0) AS services_online,
        toUInt64(0) AS services_prefill_designed,
        toUInt64(0) AS dossiers_completed,
        toUInt64(0) AS dossiers_completed_on_time,
        toUInt64(0) AS dossiers_open,
        toUInt64(0) AS dossiers_overdue,
        toUInt64(0) AS dossiers_resolved,
        toInt64(0) AS resolution_ms_total,
        toUInt64(0) AS completions_v2,
        toUInt64(0) AS results_electronic,
        toUInt64(0) AS payments,
        toUInt64(0) AS payments_online
    FROM inspection_classifications AS c FINAL
    ARRAY JOIN c.activities_at AS activity_at, c.activities_online AS activity_online
    WHERE c.cancelled = 0 AND c.kind != 'thanh_tra'
)
GROUP BY agency_code, period_start, service
UNION ALL
SELECT agency_code, period_start, service,
    sum(inspections_online) AS inspections_online,
    sum(inspections_hybrid) AS inspections_hybrid,
    sum(inspections_in_person) AS inspections_in_person,
    sum(inspections_unclassified) AS inspections_unclassified,
    sum(inspections_thanh_tra) AS inspections_thanh_tra,
    sum(activities) AS activities,
    sum(activities_online) AS activities_online,
    sum(dossiers_submitted) AS dossiers_submitted,
    sum(online_submissions) AS online_submissions,
    sum(online_full_process) AS online_full_process,
    sum(dossiers_reusing) AS dossiers_reusing,
    sum(dossiers_v2) AS dossiers_v2,
    sum(dossiers_digitized) AS dossiers_digitized,
    sum(online_prefilled) AS online_prefilled,
    sum(form_fields_total) AS form_fields_total,
    sum(form_fields_prefilled) AS form_fields_prefilled,
    sum(services_existing) AS services_existing,
    sum(services_eligible) AS services_eligible,
    sum(services_full_process) AS services_full_process,
    sum(services_online) AS services_online,
    sum(services_prefill_designed) AS services_prefill_designed,
    sum(dossiers_completed) AS dossiers_completed,
    sum(dossiers_completed_on_time) AS dossiers_completed_on_time,
    sum(dossiers_open) AS dossiers_open,
    sum(dossiers_overdue) AS dossiers_overdue,
    sum(dossiers_resolved) AS dossiers_resolved,
    sum(resolution_ms_total) AS resolution_ms_total,
    sum(completions_v2) AS completions_v2,
    sum(results_electronic) AS results_electronic,
    sum(payments) AS payments,
    sum(payments_online) AS payments_online
FROM
(
    SELECT
        agency_code AS agency_code,
        e - @interval@(1) AS period_start,
        '' AS service,
        toUInt64(0) AS inspections_online,
        toUInt64(0) AS inspections_hybrid,
        toUInt64(0) AS inspections_in_person,
        toUInt64(0) AS inspections_unclassified,
        toUInt64(0) AS inspections_thanh_tra,
        toUInt64(0) AS activities,
        toUInt64(0) AS activities_online,
        toUInt64(0) AS dossiers_submitted,
        toUInt64(0) AS online_submissions,
        toUInt64(0) AS online_full_process,
        toUInt64(0) AS dossiers_reusing,
        toUInt64(0) AS dossiers_v2,
        toUInt64(0) AS dossiers_digitized,
        toUInt64(0) AS online_prefilled,
        toUInt64(0) AS form_fields_total,
        toUInt64(0) AS form_fields_prefilled,
        toUInt64(1) AS services_existing,
        toUInt64(eligible) AS services_eligible,
        toUInt64(eligible AND level = 'full_process') AS services_full_process,
        toUInt64(level IN ('full_process', 'partial')) AS services_online,
        toUInt64(level IN ('full_process', 'partial') AND prefill_designed = 1) AS services_prefill_designed,
        toUInt64(0) AS dossiers_completed,
        toUInt64(0) AS dossiers_completed_on_time,
        toUInt64(0) AS dossiers_open,
        toUInt64(0) AS dossiers_overdue,
        toUInt64(0) AS dossiers_resolved,
        toInt64(0) AS resolution_ms_total,
        toUInt64(0) AS completions_v2,
        toUInt64(0) AS results_electronic,
        toUInt64(0) AS payments,
        toUInt64(0) AS payments_online
    FROM
    (
        SELECT
            agency_code, level, prefill_designed, eligible, from_ms, to_ms, first_period,
            last_period, from_period + @interval@(k) AS e,
            toInt64(toUnixTimestamp(toDateTime(e, 'Asia/Ho_Chi_Minh'))) * 1000 AS e_ms
        FROM
        (
            SELECT
                agency_code, level, prefill_designed,
                procedure_code IN (SELECT code FROM procedures WHERE full_process_eligible = 1)
                    AS eligible,
                toUnixTimestamp64Milli(valid_from) AS from_ms,
                ifNull(toUnixTimestamp64Milli(valid_to), toInt64(-1)) AS to_ms,
                @trunc@(toDate(toDateTime(intDiv((SELECT lo_ms FROM kpi_bounds), 1000), 'UTC'), 'Asia/Ho_Chi_Minh')) AS first_period,
                @trunc@(toDate(toDateTime(intDiv((SELECT hi_ms FROM kpi_bounds), 1000), 'UTC'), 'Asia/Ho_Chi_Minh')) AS last_period,
                @trunc@(toDate(toDateTime(intDiv(from_ms, 1000), 'UTC'), 'Asia/Ho_Chi_Minh')) AS from_period,
                -- candidate period ends E = the k-th period start from valid_from's
                range(0, toUInt64(greatest(0, dateDiff('@grain@', from_period,
                    if(to_ms < 0, last_period,
                       least(@trunc@(toDate(toDateTime(intDiv(to_ms, 1000), 'UTC'), 'Asia/Ho_Chi_Minh')), last_period)))) + 2)) AS ks
            FROM service_offering_history
            WHERE level != 'not_offered'
        )
        ARRAY JOIN ks AS k
    )
    -- the state holds at E: valid_from <= E < valid_to; P (E's period) within the range
    WHERE e_ms >= from_ms AND (to_ms < 0 OR e_ms < to_ms)
      AND e - @interval@(1) >= first_period AND e - @interval@(1) <= last_period
)
GROUP BY agency_code, period_start, service;

-- The KPIs of each agency and @grain@, and of the province (agency_code NULL).
CREATE OR REPLACE VIEW kpi_@grain@ AS
SELECT
    agency AS agency_code,
    @period@ AS period,
    period_start,
    if(inspections_online + inspections_hybrid + inspections_in_person = 0, NULL,
       (inspections_online + if(hybrid_counts_as_online = 1, inspections_hybrid, 0))
       / (inspections_online + inspections_hybrid + inspections_in_person)) AS online_inspection_share,
    if(activities = 0, NULL, activities_online / activities) AS online_activity_share,
    if(dossiers_submitted = 0, NULL, online_submissions / dossiers_submitted) AS online_dossier_rate,
    if(dossiers_submitted = 0, NULL, online_full_process / dossiers_submitted) AS full_process_dossier_rate,
    if(dossiers_submitted = 0, NULL, dossiers_reusing / dossiers_submitted) AS data_reuse_rate,
    if(dossiers_v2 = 0, NULL, dossiers_digitized / dossiers_v2) AS digitization_rate,
    if(online_submissions = 0, NULL, online_prefilled / online_submissions) AS prefilled_submission_share,
    if(form_fields_total = 0, NULL, form_fields_prefilled / form_fields_total) AS prefill_depth,
    if(services_with_online_dossiers = 0, NULL,
       services_with_prefilled_dossiers / services_with_online_dossiers) AS prefill_observed_coverage,
    if(services_eligible = 0, NULL, services_full_process / services_eligible) AS full_process_offering_rate,
    if(services_online = 0, NULL, services_prefill_designed / services_online) AS prefill_design_coverage,
    if(dossiers_completed + dossiers_open = 0, NULL,
       (dossiers_completed_on_time + dossiers_open - dossiers_overdue)
       / (dossiers_completed + dossiers_open)) AS on_time_rate,
    if(dossiers_resolved = 0, NULL, resolution_ms_total / dossiers_resolved / 86400000) AS average_resolution_days,
    if(completions_v2 = 0, NULL, results_electronic / completions_v2) AS electronic_result_rate,
    if(payments = 0, NULL, payments_online / payments) AS online_payment_rate,
    inspections_online,
    inspections_hybrid,
    inspections_in_person,
    inspections_unclassified,
    inspections_thanh_tra,
    activities,
    activities_online,
    dossiers_submitted,
    online_submissions,
    online_full_process,
    dossiers_reusing,
    dossiers_v2,
    dossiers_digitized,
    online_prefilled,
    form_fields_total,
    form_fields_prefilled,
    services_with_online_dossiers,
    services_with_prefilled_dossiers,
    services_existing,
    services_eligible,
    services_full_process,
    services_online,
    services_prefill_designed,
    dossiers_completed,
    dossiers_completed_on_time,
    dossiers_open,
    dossiers_overdue,
    dossiers_resolved,
    resolution_ms_total,
    completions_v2,
    results_electronic,
    payments,
    payments_online,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_online_inspection_share')
        AS target_online_inspection_share,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_online_activity_share')
        AS target_online_activity_share,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_online_dossier_rate')
        AS target_online_dossier_rate,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_full_process_dossier_rate')
        AS target_full_process_dossier_rate,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_data_reuse_rate')
        AS target_data_reuse_rate,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_digitization_rate')
        AS target_digitization_rate,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_prefilled_submission_share')
        AS target_prefilled_submission_share,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_prefill_depth')
        AS target_prefill_depth,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_prefill_observed_coverage')
        AS target_prefill_observed_coverage,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_full_process_offering_rate')
        AS target_full_process_offering_rate,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_prefill_design_coverage')
        AS target_prefill_design_coverage,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_on_time_rate')
        AS target_on_time_rate,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_average_resolution_days')
        AS target_average_resolution_days,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_electronic_result_rate')
        AS target_electronic_result_rate,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_online_payment_rate')
        AS target_online_payment_rate,
    toUInt8(ifNull((SELECT anyOrNull(value) FROM kpi_settings FINAL
            WHERE name = 'hybrid_counts_as_online'), 0)) AS hybrid_counts_as_online
FROM
(
    SELECT
        if(grouping(agency_code) = 1, NULL, agency_code) AS agency,
        period_start,
        sum(f.inspections_online) AS inspections_online,
        sum(f.inspections_hybrid) AS inspections_hybrid,
        sum(f.inspections_in_person) AS inspections_in_person,
        sum(f.inspections_unclassified) AS inspections_unclassified,
        sum(f.inspections_thanh_tra) AS inspections_thanh_tra,
        sum(f.activities) AS activities,
        sum(f.activities_online) AS activities_online,
        sum(f.dossiers_submitted) AS dossiers_submitted,
        sum(f.online_submissions) AS online_submissions,
        sum(f.online_full_process) AS online_full_process,
        sum(f.dossiers_reusing) AS dossiers_reusing,
        sum(f.dossiers_v2) AS dossiers_v2,
        sum(f.dossiers_digitized) AS dossiers_digitized,
        sum(f.online_prefilled) AS online_prefilled,
        sum(f.form_fields_total) AS form_fields_total,
        sum(f.form_fields_prefilled) AS form_fields_prefilled,
        sum(f.services_existing) AS services_existing,
        sum(f.services_eligible) AS services_eligible,
        sum(f.services_full_process) AS services_full_process,
        sum(f.services_online) AS services_online,
        sum(f.services_prefill_designed) AS services_prefill_designed,
        sum(f.dossiers_completed) AS dossiers_completed,
        sum(f.dossiers_completed_on_time) AS dossiers_completed_on_time,
        sum(f.dossiers_open) AS dossiers_open,
        sum(f.dossiers_overdue) AS dossiers_overdue,
        sum(f.dossiers_resolved) AS dossiers_resolved,
        sum(f.resolution_ms_total) AS resolution_ms_total,
        sum(f.completions_v2) AS completions_v2,
        sum(f.results_electronic) AS results_electronic,
        sum(f.payments) AS payments,
        sum(f.payments_online) AS payments_online,
        uniqExactIf(f.service, f.online_submissions > 0) AS services_with_online_dossiers,
        uniqExactIf(f.service, f.online_prefilled > 0) AS services_with_prefilled_dossiers
    FROM kpi_facts_@grain@ AS f
    -- ROLLUP aggregates the facts once and merges the agencies' states into the province's
    -- (GROUPING SETS would read the facts once per set); the grand total is dropped.
    GROUP BY period_start, agency_code WITH ROLLUP
    HAVING grouping(period_start) = 0 AND (inspections_online > 0 OR inspections_hybrid > 0 OR inspections_in_person > 0 OR inspections_unclassified > 0 OR inspections_thanh_tra > 0 OR activities > 0 OR activities_online > 0 OR dossiers_submitted > 0 OR online_submissions > 0 OR online_full_process > 0 OR dossiers_reusing > 0 OR dossiers_v2 > 0 OR dossiers_digitized > 0 OR online_prefilled > 0 OR form_fields_total > 0 OR form_fields_prefilled > 0 OR services_existing > 0 OR services_eligible > 0 OR services_full_process > 0 OR services_online > 0 OR services_prefill_designed > 0 OR dossiers_completed > 0 OR dossiers_completed_on_time > 0 OR dossiers_open > 0 OR dossiers_overdue > 0 OR dossiers_resolved > 0 OR completions_v2 > 0 OR results_electronic > 0 OR payments > 0 OR payments_online > 0)
);

-- @end
