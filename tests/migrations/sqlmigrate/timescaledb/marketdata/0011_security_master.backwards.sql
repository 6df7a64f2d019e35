BEGIN;
--
-- Raw SQL operation
--

DROP TRIGGER IF EXISTS marketdata_instrument_listed ON marketdata_instrument;
DROP TRIGGER IF EXISTS marketdata_instrument_relisted ON marketdata_instrument;
DROP TRIGGER IF EXISTS marketdata_listing_kept ON marketdata_listing;
DROP FUNCTION IF EXISTS marketdata_instrument_listed(), marketdata_instrument_relisted(),
    marketdata_listing_kept(), marketdata_listing_set(bigint, date, date, text, text, text,
    text, text, text, text, jsonb, boolean), marketdata_listing_clear(bigint, date, date),
    marketdata_listing_cut(bigint, date, date, timestamptz),
    marketdata_listing_lock(bigint, date, date), marketdata_listing_sync(bigint),
    marketdata_listing_today(bigint), marketdata_listings_known_at(timestamptz),
    marketdata_resolve_symbols(text[], date, timestamptz),
    marketdata_resolve_symbol(text, date, timestamptz), marketdata_universe(date, timestamptz),
    marketdata_listing_status(boolean);

--
-- Raw SQL operation
--
-- (no-op)
--
-- Audit every change of Listing
--
DROP TRIGGER IF EXISTS qvp_audit ON "marketdata_listing";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "marketdata_listing";
--
-- Create constraint listing_one_bearer_a_day on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_one_bearer_a_day";
--
-- Create constraint listing_one_version_a_day on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_one_version_a_day";
--
-- Create constraint listing_known_in_order on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_known_in_order";
--
-- Create constraint listing_figi_code on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_figi_code";
--
-- Create constraint listing_isin_code on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_isin_code";
--
-- Create constraint listing_mic_code on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_mic_code";
--
-- Create constraint listing_currency_code on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_currency_code";
--
-- Create constraint listing_symbol_not_empty on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_symbol_not_empty";
--
-- Create constraint listing_status_known on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_status_known";
--
-- Create constraint listing_dates_in_order on model listing
--
ALTER TABLE "marketdata_listing" DROP CONSTRAINT "listing_dates_in_order";
--
-- Create index listing_by_instrument on field(s) instrument, valid_from of model listing
--
DROP INDEX IF EXISTS "listing_by_instrument";
--
-- Create index listing_by_symbol on field(s) symbol, valid_from of model listing
--
DROP INDEX IF EXISTS "listing_by_symbol";
--
-- Add field instrument to listing
--
SET CONSTRAINTS "marketdata_listing_instrument_id_11083efd_fk_marketdat" IMMEDIATE; ALTER TABLE "marketdata_listing" DROP CONSTRAINT "marketdata_listing_instrument_id_11083efd_fk_marketdat";
ALTER TABLE "marketdata_listing" DROP COLUMN "instrument_id" CASCADE;
--
-- Create constraint instrument_symbol_active on model instrument
--
DROP INDEX IF EXISTS "instrument_symbol_active";
--
-- Alter field symbol on instrument
--
ALTER TABLE "marketdata_instrument" ADD CONSTRAINT "marketdata_instrument_symbol_76d7fa2a_uniq" UNIQUE ("symbol");
CREATE INDEX "marketdata_instrument_symbol_76d7fa2a_like" ON "marketdata_instrument" ("symbol" varchar_pattern_ops);
--
-- Create model Listing
--
DROP TABLE "marketdata_listing" CASCADE;
--
-- Creates extension btree_gist
--
DROP EXTENSION IF EXISTS "btree_gist";
COMMIT;
