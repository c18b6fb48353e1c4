-- Reference catalogs, loaded from schemas/reference/*.csv (or PARWATCH_CATALOG_DIR) by
-- `parwatch migrate` and by the worker at start and whenever the files change (a reload
-- replaces the whole table).
CREATE TABLE IF NOT EXISTS agencies
(
    code       String,
    name       String,
    kind       LowCardinality(String),  -- province | department | district | commune
    parent     Nullable(String),
    valid_from Date32,
    valid_to   Nullable(Date32)         -- exclusive; NULL while the unit exists
)
ENGINE = ReplacingMergeTree
ORDER BY code;

CREATE TABLE IF NOT EXISTS procedures
(
    code                  String,
    name                  String,
    agency                String,
    level                 LowCardinality(String),  -- province | district | commune
    full_process_eligible UInt8
)
ENGINE = ReplacingMergeTree
ORDER BY code;

-- Targets and policies, from settings (PARWATCH_TARGET_*, PARWATCH_HYBRID_COUNTS_AS_ONLINE),
-- written by `parwatch migrate`. The KPI views read them, so changing one needs no code change.
CREATE TABLE IF NOT EXISTS kpi_settings
(
    name       String,
    value      Float64,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY name;
