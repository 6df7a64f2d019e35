/* Draws every chart of the page from the data the server rendered beside it.
 *
 * Each <div data-chart="ID"> names a <script type="application/json" id="ID"> holding
 * {series: [{type, name, pane, options, data, lines, markers?}], intraday} (dashboard/charts.py), and
 * for a chart along a number rather than time, horizontal: "number", labels and precision
 * (dashboard/tca.py).
 * Once drawn, the div carries data-drawn="true" and data-points="N" (data-drawn="error" if
 * it could not be): what the browser tests and a reader of the page can check. A file, not inline script: the content security policy
 * allows scripts from this site only.
 */
(function () {
  "use strict";
  var LC = window.LightweightCharts;
  var TYPES = {
    candlestick: LC.CandlestickSeries,
    line: LC.LineSeries,
    histogram: LC.HistogramSeries,
    area: LC.AreaSeries,
  };
  var VOLUME_PANE_HEIGHT = 90;

  function limitLine(series, line) {
    series.createPriceLine({
      price: line.price,
      title: line.title,
      color: "#c0392b",
      lineWidth: 2,
      lineStyle: LC.LineStyle.Dashed,
      axisLabelVisible: true,
    });
  }

  // Autoscale that keeps a series' limit lines in view: a limit far from the values would
  // otherwise sit off the chart, where it cannot be seen to be far.
  function withLimits(levels) {
    return function (original) {
      var found = original();
      if (found === null || !found.priceRange) {
        return found;
      }
      found.priceRange.minValue = Math.min.apply(null, [found.priceRange.minValue].concat(levels));
      found.priceRange.maxValue = Math.max.apply(null, [found.priceRange.maxValue].concat(levels));
      return found;
    };
  }

  // A chart whose horizontal axis is a number rather than a time (spec.horizontal ===
  // "number": markout horizons in seconds, histogram buckets in basis points): the library's
  // options chart, the crosshair naming a point by spec.labels where it has a label.
  function numberAxis(spec) {
    var labels = spec.labels || {};
    var precision = spec.precision || 0;
    return {
      precision: precision,
      timeFormatter: function (x) {
        return labels[String(x)] || x.toFixed(precision);
      },
    };
  }

  function create(el, spec, options) {
    if (spec.horizontal === "number") {
      options.localization = numberAxis(spec);
      return LC.createOptionsChart(el, options);
    }
    return LC.createChart(el, options);
  }

  function draw(el) {
    var spec = JSON.parse(document.getElementById(el.dataset.chart).textContent);
    var chart = create(el, spec, {
      autoSize: true,
      // The library's logo needs an inline style, which the content security policy refuses:
      // the attribution is a link under the charts instead (templates/dashboard/charts.html).
      layout: {
        background: { color: "#ffffff" },
        textColor: "#1d2433",
        fontSize: 12,
        attributionLogo: false,
      },
      grid: { vertLines: { color: "#eef0f3" }, horzLines: { color: "#eef0f3" } },
      timeScale: { timeVisible: spec.intraday, secondsVisible: false },
      rightPriceScale: { borderVisible: false },
    });
    var points = 0;
    spec.series.forEach(function (s) {
      var options = Object.assign({ title: s.name }, s.options);
      if (s.lines.length) {
        options.autoscaleInfoProvider = withLimits(s.lines.map(function (l) { return l.price; }));
      }
      var series = chart.addSeries(TYPES[s.type], options, s.pane);
      series.setData(s.data);
      s.lines.forEach(function (line) { limitLine(series, line); });
      // Events on the line (a NAV's deposits and withdrawals): a cliff with its cause.
      if (s.markers && s.markers.length) {
        LC.createSeriesMarkers(series, s.markers);
        el.dataset.markers = String(Number(el.dataset.markers || 0) + s.markers.length);
      }
      points += s.data.length;
    });
    var panes = chart.panes();
    if (panes.length > 1) {
      panes[1].setHeight(VOLUME_PANE_HEIGHT);
    }
    chart.timeScale().fitContent();
    el.dataset.points = String(points);
    el.dataset.drawn = "true";
  }

  // One chart's failure (bad data) is said on its element and in the console; the others
  // are still drawn.
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    try {
      draw(el);
    } catch (error) {
      el.dataset.drawn = "error";
      console.error("chart " + el.dataset.chart + " not drawn: " + error);
    }
  });
  // When the page's charts were all drawn, from the start of navigation (bench/dashboard.py).
  performance.mark("qvp-charts-drawn");
})();
