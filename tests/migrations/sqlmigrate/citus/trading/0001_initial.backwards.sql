BEGIN;
--
-- Create constraint position_flat_has_no_cost on model position
--
ALTER TABLE "trading_position" DROP CONSTRAINT "position_flat_has_no_cost";
--
-- Create constraint position_average_cost_not_negative on model position
--
ALTER TABLE "trading_position" DROP CONSTRAINT "position_average_cost_not_negative";
--
-- Create constraint position_one_per_account_instrument on model position
--
ALTER TABLE "trading_position" DROP CONSTRAINT "position_one_per_account_instrument";
--
-- Create constraint snapshot_gross_not_negative on model portfoliosnapshot
--
ALTER TABLE "trading_portfoliosnapshot" DROP CONSTRAINT "snapshot_gross_not_negative";
--
-- Create constraint snapshot_nav_is_cash_plus_value on model portfoliosnapshot
--
ALTER TABLE "trading_portfoliosnapshot" DROP CONSTRAINT "snapshot_nav_is_cash_plus_value";
--
-- Create constraint snapshot_by_account_time on model portfoliosnapshot
--
ALTER TABLE "trading_portfoliosnapshot" DROP CONSTRAINT "snapshot_by_account_time";
--
-- Create constraint execution_exec_id_not_empty on model execution
--
ALTER TABLE "trading_execution" DROP CONSTRAINT "execution_exec_id_not_empty";
--
-- Create constraint execution_supersedes_only_bust_or_correction on model execution
--
ALTER TABLE "trading_execution" DROP CONSTRAINT "execution_supersedes_only_bust_or_correction";
--
-- Create constraint execution_liquidity_known on model execution
--
ALTER TABLE "trading_execution" DROP CONSTRAINT "execution_liquidity_known";
--
-- Create constraint execution_kind_known on model execution
--
ALTER TABLE "trading_execution" DROP CONSTRAINT "execution_kind_known";
--
-- Create constraint execution_fee_not_negative on model execution
--
ALTER TABLE "trading_execution" DROP CONSTRAINT "execution_fee_not_negative";
--
-- Create constraint execution_price_positive on model execution
--
ALTER TABLE "trading_execution" DROP CONSTRAINT "execution_price_positive";
--
-- Create constraint execution_side_matches_sign on model execution
--
ALTER TABLE "trading_execution" DROP CONSTRAINT "execution_side_matches_sign";
--
-- Create constraint execution_quantity_not_zero on model execution
--
ALTER TABLE "trading_execution" DROP CONSTRAINT "execution_quantity_not_zero";
--
-- Create index execution_position_replay_idx on field(s) account, instrument, position_sequence of model execution
--
DROP INDEX IF EXISTS "execution_position_replay_idx";
--
-- Create index execution_recent_per_acct_idx on field(s) account, -executed_at of model execution
--
DROP INDEX IF EXISTS "execution_recent_per_acct_idx";
--
-- Create index execution_per_order_idx on field(s) order, executed_at of model execution
--
DROP INDEX IF EXISTS "execution_per_order_idx";
--
-- Create constraint order_client_id_not_empty on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_client_id_not_empty";
--
-- Create constraint order_prices_match_type on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_prices_match_type";
--
-- Create constraint order_stop_price_positive on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_stop_price_positive";
--
-- Create constraint order_limit_price_positive on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_limit_price_positive";
--
-- Create constraint order_filled_within_quantity on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_filled_within_quantity";
--
-- Create constraint order_quantity_positive on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_quantity_positive";
--
-- Create constraint order_status_known on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_status_known";
--
-- Create constraint order_time_in_force_known on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_time_in_force_known";
--
-- Create constraint order_type_known on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_type_known";
--
-- Create constraint order_side_known on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_side_known";
--
-- Create constraint order_client_id_unique_per_account on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_client_id_unique_per_account";
--
-- Create index order_open_idx on field(s) status of model order
--
DROP INDEX IF EXISTS "order_open_idx";
--
-- Create index order_recent_per_account_idx on field(s) account, -created_at of model order
--
DROP INDEX IF EXISTS "order_recent_per_account_idx";
--
-- Create constraint cash_currency_code on model cashentry
--
ALTER TABLE "trading_cashentry" DROP CONSTRAINT "cash_currency_code";
--
-- Create constraint cash_execution_entries_linked on model cashentry
--
ALTER TABLE "trading_cashentry" DROP CONSTRAINT "cash_execution_entries_linked";
--
-- Create constraint cash_withdrawal_negative on model cashentry
--
ALTER TABLE "trading_cashentry" DROP CONSTRAINT "cash_withdrawal_negative";
--
-- Create constraint cash_deposit_positive on model cashentry
--
ALTER TABLE "trading_cashentry" DROP CONSTRAINT "cash_deposit_positive";
--
-- Create constraint cash_amount_not_zero on model cashentry
--
ALTER TABLE "trading_cashentry" DROP CONSTRAINT "cash_amount_not_zero";
--
-- Create constraint cash_kind_known on model cashentry
--
ALTER TABLE "trading_cashentry" DROP CONSTRAINT "cash_kind_known";
--
-- Create index cash_balance_asof_idx on field(s) account, currency, entry_at of model cashentry
--
DROP INDEX IF EXISTS "cash_balance_asof_idx";
--
-- Create constraint backtest_trade_fee_not_negative on model backtesttrade
--
ALTER TABLE "trading_backtesttrade" DROP CONSTRAINT "backtest_trade_fee_not_negative";
--
-- Create constraint backtest_trade_price_positive on model backtesttrade
--
ALTER TABLE "trading_backtesttrade" DROP CONSTRAINT "backtest_trade_price_positive";
--
-- Create constraint backtest_trade_side_matches_sign on model backtesttrade
--
ALTER TABLE "trading_backtesttrade" DROP CONSTRAINT "backtest_trade_side_matches_sign";
--
-- Create constraint backtest_trade_quantity_not_zero on model backtesttrade
--
ALTER TABLE "trading_backtesttrade" DROP CONSTRAINT "backtest_trade_quantity_not_zero";
--
-- Create index backtest_trades_in_order_idx on field(s) run, ts of model backtesttrade
--
DROP INDEX IF EXISTS "backtest_trades_in_order_idx";
--
-- Create constraint backtest_capital_positive on model backtestrun
--
ALTER TABLE "trading_backtestrun" DROP CONSTRAINT "backtest_capital_positive";
--
-- Create constraint backtest_turnover_not_negative on model backtestrun
--
ALTER TABLE "trading_backtestrun" DROP CONSTRAINT "backtest_turnover_not_negative";
--
-- Create constraint backtest_hit_rate_fraction on model backtestrun
--
ALTER TABLE "trading_backtestrun" DROP CONSTRAINT "backtest_hit_rate_fraction";
--
-- Create constraint backtest_max_drawdown_fraction on model backtestrun
--
ALTER TABLE "trading_backtestrun" DROP CONSTRAINT "backtest_max_drawdown_fraction";
--
-- Create constraint backtest_status_known on model backtestrun
--
ALTER TABLE "trading_backtestrun" DROP CONSTRAINT "backtest_status_known";
--
-- Create constraint backtest_period_ordered on model backtestrun
--
ALTER TABLE "trading_backtestrun" DROP CONSTRAINT "backtest_period_ordered";
--
-- Create index backtest_per_strategy_idx on field(s) strategy, -created_at of model backtestrun
--
DROP INDEX IF EXISTS "backtest_per_strategy_idx";
--
-- Create constraint account_name_not_empty on model account
--
ALTER TABLE "trading_account" DROP CONSTRAINT "account_name_not_empty";
--
-- Create constraint account_base_currency_code on model account
--
ALTER TABLE "trading_account" DROP CONSTRAINT "account_base_currency_code";
--
-- Create model Position
--
DROP TABLE "trading_position" CASCADE;
--
-- Create model PortfolioSnapshot
--
DROP TABLE "trading_portfoliosnapshot" CASCADE;
--
-- Add field order to execution
--
SET CONSTRAINTS "trading_execution_order_id_a9878834_fk_trading_order_id" IMMEDIATE; ALTER TABLE "trading_execution" DROP CONSTRAINT "trading_execution_order_id_a9878834_fk_trading_order_id";
ALTER TABLE "trading_execution" DROP COLUMN "order_id" CASCADE;
--
-- Create model Order
--
DROP TABLE "trading_order" CASCADE;
--
-- Create model CashEntry
--
DROP TABLE "trading_cashentry" CASCADE;
--
-- Create model Execution
--
DROP TABLE "trading_execution" CASCADE;
--
-- Create model BacktestTrade
--
DROP TABLE "trading_backtesttrade" CASCADE;
--
-- Create model BacktestRun
--
DROP TABLE "trading_backtestrun" CASCADE;
--
-- Create model Account
--
DROP TABLE "trading_account_groups" CASCADE;
DROP TABLE "trading_account" CASCADE;
COMMIT;
