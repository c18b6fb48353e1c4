"""The warehouse: the ClickHouse client, batch writes and the writing thread, migrations
(and their cluster form), reference data, KPI queries, and the embedded warehouse's query
endpoint."""
