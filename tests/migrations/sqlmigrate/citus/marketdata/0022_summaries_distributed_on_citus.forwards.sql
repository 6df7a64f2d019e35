BEGIN;
--
-- On Citus, distribute marketdata_minutebar_1d, marketdata_minutebar_1h beside MinuteBar
--
DO $qvp$
DECLARE
    s record;
    c record;
BEGIN
    FOR s IN SELECT a.view_name, d.column_name, x.logicalrelid IS NOT NULL AS distributed,
               coalesce(x.partmethod = 'h' AND x.colocationid = d.colocationid, false) AS beside
        FROM qvp_timeseries_aggregate a
        CROSS JOIN LATERAL (
            SELECT column_to_column_name(p.logicalrelid, p.partkey) AS column_name, p.colocationid
            FROM pg_dist_partition p WHERE p.logicalrelid = to_regclass(quote_ident(a.source_table))
        ) d
        LEFT JOIN pg_dist_partition x ON x.logicalrelid = to_regclass(quote_ident(a.view_name))
        WHERE a.source_table = 'marketdata_minutebar' AND a.view_name = ANY ('{marketdata_minutebar_1d,marketdata_minutebar_1h}'::text[])
          AND d.column_name = ANY (a.group_by) AND to_regclass(quote_ident(a.view_name)) IS NOT NULL
        ORDER BY a.view_name
    LOOP
        IF s.distributed AND NOT s.beside THEN
            RAISE EXCEPTION '% is distributed, but not beside %', s.view_name, 'marketdata_minutebar'
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        CONTINUE WHEN s.beside;
        PERFORM create_distributed_table(quote_ident(s.view_name), s.column_name,
                                         colocate_with => '"marketdata_minutebar"');
    END LOOP;
END
$qvp$;
COMMIT;
