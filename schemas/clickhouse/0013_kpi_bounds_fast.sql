-- kpi_bounds from plain min() and max() of occurred_at, which ClickHouse answers from each
-- part's column statistics without reading the column (a province's year: 120 ms -> 2 ms;
-- every KPI view reads the bounds). count() = 0 keeps an empty table's bound NULL, as
-- minOrNull/maxOrNull did; the values are the same instants in milliseconds.
CREATE OR REPLACE VIEW kpi_bounds AS
SELECT min(lo) AS lo_ms, max(hi) AS hi_ms
FROM
(
    SELECT if(count() = 0, NULL, toUnixTimestamp64Milli(min(occurred_at))) AS lo,
           if(count() = 0, NULL, toUnixTimestamp64Milli(max(occurred_at))) AS hi
    FROM inspection_events
    UNION ALL
    SELECT if(count() = 0, NULL, toUnixTimestamp64Milli(min(occurred_at))),
           if(count() = 0, NULL, toUnixTimestamp64Milli(max(occurred_at)))
    FROM service_events
    UNION ALL
    SELECT if(count() = 0, NULL, toUnixTimestamp64Milli(min(occurred_at))),
           if(count() = 0, NULL, toUnixTimestamp64Milli(max(occurred_at)))
    FROM offering_events
);
