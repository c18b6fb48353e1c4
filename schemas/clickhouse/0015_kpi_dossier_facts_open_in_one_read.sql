-- kpi_facts_dossiers_<grain>: the dossiers open (and overdue) at each period's end come from the
-- same read of dossier_lifecycle FINAL as the submissions, first payments and completions, so
-- the view reads the table once. The view keeps its columns, types and rows.
--
-- * One GROUP BY GROUPING SETS over the lifecycles: submissions by submission period (and
--   online service), first payments by payment period, ends by end period, and overdue starts.
-- * An open dossier (service/2 with a due_at, still open at the end of its submission's period:
--   0012's rule) is open at the end of every period P from its submission's to the one before
--   its end (to the last period while unanswered): it adds 1 in its submission's period and
--   takes 1 away in its end's. It is overdue at the end of P from
--   P = max(submission's period, effective_due_at's period) (the end of that period is after
--   effective_due_at), while open. The changes summed over the periods up to P (a window over
--   each agency's grouped rows) count the dossiers open and overdue at the end of P; a count
--   holds until the agency's next period with a change, and each period from the first to the
--   last period of kpi_bounds gets its row where the count is above 0.
-- * The 0/1 counts are summed two to a UInt64 (low and high 32 bits), which halves the sums
--   every grouping set computes; a group holds fewer than 2^32 dossiers, so neither half
--   overflows. The sums of 0014 that are Nullable stay so (NULL when every summed value is).
-- Columns, types and rows equal 0014's (tested at every grain through kpi_<grain> against
-- schemas/kpi.py).

-- @each grain
CREATE OR REPLACE VIEW kpi_facts_dossiers_@grain@ AS
SELECT
    toString(agency_code) AS agency_code,
    -- j < 0: the grouped fact itself; j >= 0: the open dossiers at the end of a period
    if(j < 0, period_start, open_from + @interval@(j)) AS period_start,
    if(kind = 0 AND online AND j < 0, concat(toString(agency_code), ':', toString(online_procedure)), '') AS service,
    toUInt64(0) AS inspections_online,
    toUInt64(0) AS inspections_hybrid,
    toUInt64(0) AS inspections_in_person,
    toUInt64(0) AS inspections_unclassified,
    toUInt64(0) AS inspections_thanh_tra,
    toUInt64(0) AS activities,
    toUInt64(0) AS activities_online,
    if(kind = 0 AND j < 0, n, 0) AS dossiers_submitted,
    if(kind = 0 AND j < 0, bitAnd(p1, 4294967295), 0) AS online_submissions,
    if(kind = 0 AND j < 0, bitShiftRight(p1, 32), 0) AS online_full_process,
    if(kind = 0 AND j < 0, bitAnd(p2, 4294967295), 0) AS dossiers_reusing,
    if(kind = 0 AND j < 0, bitShiftRight(p2, 32), 0) AS dossiers_v2,
    if(kind = 0 AND j < 0, if(bitShiftRight(p3, 32) = 0, NULL, bitAnd(p3, 4294967295)), 0) AS dossiers_digitized,
    if(kind = 0 AND j < 0, bitAnd(p4, 4294967295), 0) AS online_prefilled,
    if(kind = 0 AND j < 0, form_fields_total, 0) AS form_fields_total,
    if(kind = 0 AND j < 0, form_fields_prefilled, 0) AS form_fields_prefilled,
    toUInt64(0) AS services_existing,
    toUInt64(0) AS services_eligible,
    toUInt64(0) AS services_full_process,
    toUInt64(0) AS services_online,
    toUInt64(0) AS services_prefill_designed,
    if(kind = 2 AND j < 0, bitAnd(p6, 4294967295), 0) AS dossiers_completed,
    if(kind = 2 AND j < 0, if(bitShiftRight(p7, 32) = 0, NULL, bitAnd(p7, 4294967295)), 0) AS dossiers_completed_on_time,
    if(j < 0, 0, toUInt64(open_now)) AS dossiers_open,
    if(j < 0, 0, toUInt64(overdue_now)) AS dossiers_overdue,
    if(kind = 2 AND j < 0, bitShiftRight(p6, 32), 0) AS dossiers_resolved,
    if(kind = 2 AND j < 0, resolution_ms_total, 0) AS resolution_ms_total,
    if(kind = 2 AND j < 0, bitAnd(p9, 4294967295), 0) AS completions_v2,
    if(kind = 2 AND j < 0, if(bitShiftRight(p8, 32) = 0, NULL, bitAnd(p8, 4294967295)), 0) AS results_electronic,
    if(kind = 1 AND j < 0, n, 0) AS payments,
    if(kind = 1 AND j < 0, bitAnd(p5, 4294967295), 0) AS payments_online
FROM
(
    SELECT
        *,
        assumeNotNull(@trunc@(toDate(toDateTime(intDiv((SELECT lo_ms FROM kpi_bounds), 1000), 'UTC'), 'Asia/Ho_Chi_Minh'))) AS first_period,
        assumeNotNull(@trunc@(toDate(toDateTime(intDiv((SELECT hi_ms FROM kpi_bounds), 1000), 'UTC'), 'Asia/Ho_Chi_Minh'))) AS last_period,
        -- open (overdue) at the end of period_start: the agency's changes up to it, summed
        sum(toInt64(if(kind = 0, bitShiftRight(p4, 32), 0)) - toInt64(if(kind = 2, bitShiftRight(p9, 32), 0))) OVER w AS open_now,
        sum(toInt64(if(kind = 3, n, 0)) - toInt64(if(kind = 2, overdue_ended_n, 0))) OVER w AS overdue_now,
        -- the agency's next period with a row (none: the one after the last period)
        ifNull(minOrNull(period_start) OVER (PARTITION BY agency_code ORDER BY period_start
                   RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), last_period + @interval@(1)) AS next_change,
        greatest(period_start, first_period) AS open_from,
        -- the first of the agency's rows of a period emits its open dossiers, if any
        row_number() OVER w = rank() OVER w AND open_now > 0 AS emits_open
    FROM
    (
        SELECT
            agency_code, online, online_procedure,
            -- the grouping set of the row: 0 submissions, 1 payments, 2 ends, 3 overdue starts
            multiIf(grouping(submitted_period) = 0, 0, grouping(paid_period) = 0, 1,
                    grouping(end_period) = 0, 2, 3) AS kind,
            assumeNotNull(multiIf(kind = 0, submitted_period, kind = 1, paid_period,
                                  kind = 2, end_period, overdue_from)) AS period_start,
            count() AS n,
            -- low 32 bits | high 32 bits
            sum(toUInt64(channel = 'online')
                + bitShiftLeft(toUInt64(channel = 'online' AND service_level = 'full_process'), 32)) AS p1,
            sum(toUInt64(reused_components >= 1 OR (channel = 'online' AND fields_prefilled >= 1))
                + bitShiftLeft(toUInt64(submission_schema = 'service/2'), 32)) AS p2,
            -- the count and the number of non-NULL values
            sum(toUInt64(ifNull(digitized_v, 0)) + bitShiftLeft(toUInt64(digitized_v IS NOT NULL), 32)) AS p3,
            sum(toUInt64(channel = 'online' AND fields_prefilled >= 1)
                + bitShiftLeft(toUInt64(open_candidate), 32)) AS p4,
            sum(toUInt64(payment_channel = 'online') + bitShiftLeft(toUInt64(completed), 32)) AS p5,
            sum(toUInt64(completed AND (submission_schema = 'service/2' OR on_time IS NOT NULL))
                + bitShiftLeft(toUInt64(completed AND submission_schema = 'service/2'), 32)) AS p6,
            sum(toUInt64(ifNull(on_time_v, 0)) + bitShiftLeft(toUInt64(on_time_v IS NOT NULL), 32)) AS p7,
            sum(toUInt64(ifNull(electronic_v, 0)) + bitShiftLeft(toUInt64(electronic_v IS NOT NULL), 32)) AS p8,
            sum(toUInt64(completed AND end_schema = 'service/2')
                + bitShiftLeft(toUInt64(open_candidate AND end_ms >= 0), 32)) AS p9,
            sum(toUInt64(overdue_from IS NOT NULL AND end_ms >= 0)) AS overdue_ended_n,
            sum(toUInt64(if(channel = 'online', fields_total, 0))) AS form_fields_total,
            sum(toUInt64(if(channel = 'online', fields_prefilled, 0))) AS form_fields_prefilled,
            sum(toInt64(if(completed AND submission_schema = 'service/2', end_ms - submitted_ms - paused_ms, 0))) AS resolution_ms_total
        FROM
        (
            SELECT
                agency_code, channel, service_level, fields_total, fields_prefilled,
                reused_components, submission_schema, payment_channel, on_time, paused_ms, end_schema,
                -- NULL: the dossier has no such fact (its rows in that set are dropped above)
                if(submitted_at IS NULL, NULL,
                   @trunc@(toDate(assumeNotNull(submitted_at), 'Asia/Ho_Chi_Minh'))) AS submitted_period,
                channel = 'online' AS online,
                if(online, procedure_code, '') AS online_procedure,
                if(paid_at IS NULL, NULL,
                   @trunc@(toDate(assumeNotNull(paid_at), 'Asia/Ho_Chi_Minh'))) AS paid_period,
                end_type = 'completed' AS completed,
                ifNull(toUnixTimestamp64Milli(ended_at), -1) AS end_ms,
                ifNull(toUnixTimestamp64Milli(submitted_at), -1) AS submitted_ms,
                @trunc@(toDate(assumeNotNull(ended_at), 'Asia/Ho_Chi_Minh')) AS ended_period,
                -- a completion's period (0014's), or any end's: the open dossiers' decrement
                if(completed OR end_ms >= 0, ended_period, NULL) AS end_period,
                -- 0014's Nullable summands, NULL too outside the rows 0014 summed them over
                submission_schema = 'service/2' AND digitized = 1 AS digitized_v,
                if(completed, if(submission_schema = 'service/2',
                                 effective_due_at IS NULL OR end_ms <= toUnixTimestamp64Milli(assumeNotNull(effective_due_at)),
                                 on_time = 1), NULL) AS on_time_v,
                if(completed, end_schema = 'service/2' AND result_electronic = 1, NULL) AS electronic_v,
                -- open at the end of its submission's period (0012's rule)
                submission_schema = 'service/2' AND due_at IS NOT NULL
                  AND (ended_at IS NULL OR end_ms >= toInt64(toUnixTimestamp(toDateTime(
                      assumeNotNull(submitted_period) + @interval@(1), 'Asia/Ho_Chi_Minh'))) * 1000)
                  AS open_candidate,
                -- the first period at whose end it is overdue, if it is open then
                if(open_candidate AND effective_due_at IS NOT NULL AND toUnixTimestamp64Milli(assumeNotNull(effective_due_at)) >= 0,
                   greatest(assumeNotNull(submitted_period),
                            @trunc@(toDate(assumeNotNull(effective_due_at), 'Asia/Ho_Chi_Minh'))), NULL) AS overdue_start,
                if(end_ms < 0 OR overdue_start < ended_period, overdue_start, NULL) AS overdue_from
            FROM dossier_lifecycle FINAL
        )
        GROUP BY GROUPING SETS (
            (agency_code, submitted_period, online, online_procedure),
            (agency_code, paid_period),
            (agency_code, end_period),
            (agency_code, overdue_from))
        HAVING multiIf(kind = 0, submitted_period, kind = 1, paid_period, kind = 2, end_period, overdue_from) IS NOT NULL
    )
    WINDOW w AS (PARTITION BY agency_code ORDER BY period_start)
)
-- each grouped row: its fact (-1), if it is one (an end period counts only its completions),
-- then the periods its open dossiers count for (0, 1, ... after open_from)
ARRAY JOIN arrayConcat(
    if(kind = 0 OR kind = 1 OR (kind = 2 AND bitShiftRight(p5, 32) > 0), [-1], []),
    if(emits_open, range(toInt64(greatest(0, dateDiff('@grain@', open_from,
        least(next_change - @interval@(1), last_period)) + 1))), [])
) AS j;
-- @end
