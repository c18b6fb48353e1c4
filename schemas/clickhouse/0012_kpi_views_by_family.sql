-- The KPI facts by family, so that a panel needing only the offering state or only the
-- inspections reads those facts and not every dossier (a province's year: ~2.3M lifecycles).
-- kpi_facts_<grain> and kpi_<grain> keep their content: the facts view is now the union of the
-- three family views. kpi_services_<grain> and kpi_inspections_<grain> are narrow KPI views:
-- their columns equal the columns of kpi_<grain> with the same names, on the rows where the
-- family has a fact (one per agency and period, one per period for the province).

-- @each grain
-- The facts of each agency, @grain@ and service: dossier submissions, first payments,
-- completions and dossiers open at the period's end (dossier_lifecycle).
CREATE OR REPLACE VIEW kpi_facts_dossiers_@grain@ AS
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
GROUP BY agency_code, period_start, service;

-- The facts of each agency, @grain@ and service: concluded inspections and their
-- activities (inspection_classifications).
CREATE OR REPLACE VIEW kpi_facts_inspections_@grain@ AS
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
GROUP BY agency_code, period_start, service;

-- The facts of each agency, @grain@ and service: services existing at the period's end
-- (service_offering_history).
CREATE OR REPLACE VIEW kpi_facts_services_@grain@ AS
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

-- Every counted fact: the union of the three families (columns as before).
CREATE OR REPLACE VIEW kpi_facts_@grain@ AS
SELECT * FROM kpi_facts_dossiers_@grain@
UNION ALL
SELECT * FROM kpi_facts_inspections_@grain@
UNION ALL
SELECT * FROM kpi_facts_services_@grain@;

-- The offering KPIs of each agency and @grain@, and of the province (agency_code NULL),
-- from the offering state only.
CREATE OR REPLACE VIEW kpi_services_@grain@ AS
SELECT
    agency AS agency_code,
    toNullable(@period@) AS period,  -- the types of kpi_@grain@'s columns
    toNullable(period_start) AS period_start,
    if(services_eligible = 0, NULL, services_full_process / services_eligible) AS full_process_offering_rate,
    if(services_online = 0, NULL, services_prefill_designed / services_online) AS prefill_design_coverage,
    services_existing,
    services_eligible,
    services_full_process,
    services_online,
    services_prefill_designed,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_full_process_offering_rate')
        AS target_full_process_offering_rate,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_prefill_design_coverage')
        AS target_prefill_design_coverage
FROM
(
    SELECT
        if(grouping(agency_code) = 1, NULL, agency_code) AS agency,
        period_start,
        sum(f.services_existing) AS services_existing,
        sum(f.services_eligible) AS services_eligible,
        sum(f.services_full_process) AS services_full_process,
        sum(f.services_online) AS services_online,
        sum(f.services_prefill_designed) AS services_prefill_designed
    FROM kpi_facts_services_@grain@ AS f
    GROUP BY period_start, agency_code WITH ROLLUP
    HAVING grouping(period_start) = 0 AND (services_existing > 0 OR services_eligible > 0 OR services_full_process > 0 OR services_online > 0 OR services_prefill_designed > 0)
);

-- The inspection KPIs of each agency and @grain@, and of the province (agency_code NULL),
-- from the inspections only.
CREATE OR REPLACE VIEW kpi_inspections_@grain@ AS
SELECT
    agency AS agency_code,
    toNullable(@period@) AS period,  -- the types of kpi_@grain@'s columns
    toNullable(period_start) AS period_start,
    if(inspections_online + inspections_hybrid + inspections_in_person = 0, NULL,
       (inspections_online + if(hybrid_counts_as_online = 1, inspections_hybrid, 0))
       / (inspections_online + inspections_hybrid + inspections_in_person)) AS online_inspection_share,
    if(activities = 0, NULL, activities_online / activities) AS online_activity_share,
    inspections_online,
    inspections_hybrid,
    inspections_in_person,
    inspections_unclassified,
    inspections_thanh_tra,
    activities,
    activities_online,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_online_inspection_share')
        AS target_online_inspection_share,
    (SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_online_activity_share')
        AS target_online_activity_share,
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
        sum(f.activities_online) AS activities_online
    FROM kpi_facts_inspections_@grain@ AS f
    GROUP BY period_start, agency_code WITH ROLLUP
    HAVING grouping(period_start) = 0 AND (inspections_online > 0 OR inspections_hybrid > 0 OR inspections_in_person > 0 OR inspections_unclassified > 0 OR inspections_thanh_tra > 0 OR activities > 0 OR activities_online > 0)
);

-- @end
