-- The KPI views kpi_day, kpi_month, kpi_quarter and kpi_year, from one definition (the runner
-- repeats the block for each grain: streams.warehouse.migrations.expand_grains). The province
-- row's NULL agency comes from grouping() instead of `SETTINGS group_by_use_nulls = 1`, which a
-- session at readonly=1 (the query endpoint's) silently ignores. Same columns, types and rows
-- as 0005.

-- @each grain
CREATE OR REPLACE VIEW kpi_@grain@ AS
SELECT
    agency AS agency_code,
    @period@ AS period,
    period_start,
    inspections_online,
    inspections_hybrid,
    inspections_in_person,
    inspections_unclassified,
    if(inspections_classified = 0, NULL,
       (inspections_online + if(hybrid_counts_as_online = 1, inspections_hybrid, 0))
       / inspections_classified) AS online_inspection_share,
    online_submissions,
    if(online_submissions = 0, NULL, prefilled_submissions / online_submissions)
        AS prefilled_submission_share,
    if(form_fields_total = 0, NULL, form_fields_prefilled / form_fields_total) AS prefill_depth,
    if(procedures_online = 0, NULL, procedures_prefilled / procedures_online)
        AS service_prefill_coverage,
    if(submissions = 0, NULL, full_process_submissions / submissions) AS full_process_share,
    if(completed = 0, NULL, completed_on_time / completed) AS on_time_rate,
    inspections_classified,
    submissions,
    prefilled_submissions,
    full_process_submissions,
    form_fields_total,
    form_fields_prefilled,
    procedures_online,
    procedures_prefilled,
    completed,
    completed_on_time,
    ifNull((SELECT anyOrNull(value) FROM kpi_settings FINAL
            WHERE name = 'target_online_inspection_share'), 0.4) AS target_online_inspection_share,
    ifNull((SELECT anyOrNull(value) FROM kpi_settings FINAL
            WHERE name = 'target_service_prefill_coverage'), 1.0)
        AS target_service_prefill_coverage,
    ifNull((SELECT anyOrNull(value) FROM kpi_settings FINAL
            WHERE name = 'target_full_process_share'), 1.0) AS target_full_process_share,
    toUInt8(ifNull((SELECT anyOrNull(value) FROM kpi_settings FINAL
            WHERE name = 'hybrid_counts_as_online'), 0)) AS hybrid_counts_as_online
FROM
(
    SELECT
        if(grouping(agency_code) = 1, NULL, agency_code) AS agency,
        @period_start@ AS period_start,
        countIf(fact = 'inspection' AND classification = 'online') AS inspections_online,
        countIf(fact = 'inspection' AND classification = 'hybrid') AS inspections_hybrid,
        countIf(fact = 'inspection' AND classification = 'in_person') AS inspections_in_person,
        countIf(fact = 'inspection' AND classification = 'unclassified')
            AS inspections_unclassified,
        inspections_online + inspections_hybrid + inspections_in_person
            AS inspections_classified,
        countIf(fact = 'submission') AS submissions,
        countIf(fact = 'submission' AND channel = 'online') AS online_submissions,
        countIf(fact = 'submission' AND channel = 'online' AND fields_prefilled > 0)
            AS prefilled_submissions,
        countIf(fact = 'submission' AND channel = 'online' AND service_level = 'full_process')
            AS full_process_submissions,
        sumIf(fields_total, fact = 'submission' AND channel = 'online') AS form_fields_total,
        sumIf(fields_prefilled, fact = 'submission' AND channel = 'online')
            AS form_fields_prefilled,
        uniqExactIf(procedure_code, fact = 'submission' AND channel = 'online')
            AS procedures_online,
        uniqExactIf(procedure_code,
                    fact = 'submission' AND channel = 'online' AND fields_prefilled > 0)
            AS procedures_prefilled,
        countIf(fact = 'completion') AS completed,
        countIf(fact = 'completion' AND on_time = 1) AS completed_on_time
    FROM kpi_facts
    GROUP BY GROUPING SETS ((agency_code, period_start), (period_start))
);

-- @end
