BEGIN;
--
-- Create constraint dailybar_values_finite on model dailybar
--
ALTER TABLE "marketdata_dailybar" ADD CONSTRAINT "dailybar_values_finite" CHECK (("close" < 'Infinity'::float8 AND "high" < 'Infinity'::float8 AND "low" < 'Infinity'::float8 AND "open" < 'Infinity'::float8 AND ("volume" IS NULL OR "volume" < 'Infinity'::float8) AND ("vwap" IS NULL OR "vwap" < 'Infinity'::float8)));
--
-- Create constraint minutebar_values_finite on model minutebar
--
ALTER TABLE "marketdata_minutebar" ADD CONSTRAINT "minutebar_values_finite" CHECK (("close" < 'Infinity'::float8 AND "high" < 'Infinity'::float8 AND "low" < 'Infinity'::float8 AND "open" < 'Infinity'::float8 AND ("volume" IS NULL OR "volume" < 'Infinity'::float8) AND ("vwap" IS NULL OR "vwap" < 'Infinity'::float8)));
--
-- Create constraint optionquote_values_finite on model optionquote
--
ALTER TABLE "marketdata_optionquote" ADD CONSTRAINT "optionquote_values_finite" CHECK (("strike" < 'Infinity'::float8 AND ("bid" IS NULL OR "bid" < 'Infinity'::float8) AND ("ask" IS NULL OR "ask" < 'Infinity'::float8) AND ("last" IS NULL OR "last" < 'Infinity'::float8) AND ("iv" IS NULL OR "iv" < 'Infinity'::float8) AND ("delta" IS NULL OR "delta" < 'Infinity'::float8) AND ("gamma" IS NULL OR "gamma" < 'Infinity'::float8) AND ("theta" IS NULL OR "theta" < 'Infinity'::float8) AND ("vega" IS NULL OR "vega" < 'Infinity'::float8) AND ("rho" IS NULL OR "rho" < 'Infinity'::float8)));
--
-- Create constraint tick_values_finite on model tick
--
ALTER TABLE "marketdata_tick" ADD CONSTRAINT "tick_values_finite" CHECK ((("price" IS NULL OR "price" < 'Infinity'::float8) AND ("size" IS NULL OR "size" < 'Infinity'::float8) AND ("bid" IS NULL OR "bid" < 'Infinity'::float8) AND ("ask" IS NULL OR "ask" < 'Infinity'::float8) AND ("bid_size" IS NULL OR "bid_size" < 'Infinity'::float8) AND ("ask_size" IS NULL OR "ask_size" < 'Infinity'::float8)));
COMMIT;
