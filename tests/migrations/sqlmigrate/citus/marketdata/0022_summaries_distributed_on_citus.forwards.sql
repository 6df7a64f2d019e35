BEGIN;
--
-- On Citus, distribute the summaries of MinuteBar beside it
--
DO $qvp$
DECLARE
    s record;
    c record;
BEGIN
    FOR s IN SELECT a.view_name, d.column_name,
               EXISTS (SELECT 1 FROM pg_dist_partition x
                       WHERE x.logicalrelid = to_regclass(quote_ident(a.view_name))) AS distributed
        FROM qvp_timeseries_aggregate a
        CROSS JOIN LATERAL (
            SELECT column_to_column_name(p.logicalrelid, p.partkey) AS column_name
            FROM pg_dist_partition p WHERE p.logicalrelid = to_regclass(quote_ident(a.source_table))
        ) d
        WHERE a.source_table = 'marketdata_minutebar' AND d.column_name = ANY (a.group_by)
          AND to_regclass(quote_ident(a.view_name)) IS NOT NULL
        ORDER BY a.view_name
    LOOP
        CONTINUE WHEN s.distributed;
        PERFORM create_distributed_table(quote_ident(s.view_name), s.column_name, colocate_with => 'marketdata_minutebar');
    END LOOP;
END
$qvp$;
COMMIT;
