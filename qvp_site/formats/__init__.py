"""The site's formats (settings.FORMAT_MODULE_PATH): times with seconds and their zone, dates
in ISO order, wherever Django renders a value without a format of its own (the admin)."""
