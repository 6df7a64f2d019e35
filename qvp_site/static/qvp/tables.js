/* Gives each cell of the page's tables its column's heading as data-label: on a phone the
 * stylesheet stacks a table's cells and prints the label before each (qvp/site.css). A file,
 * not inline script: the content security policy allows scripts from this site only.
 */
(function () {
  "use strict";
  function headings(table) {
    var row = table.tHead && table.tHead.rows[0];
    var found = [];
    if (!row) {
      return found;
    }
    Array.prototype.forEach.call(row.cells, function (th) {
      for (var i = 0; i < th.colSpan; i++) {
        found.push(th.textContent.trim());
      }
    });
    return found;
  }

  document.querySelectorAll("main table").forEach(function (table) {
    var labels = headings(table);
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          // A cell across every column (a table's "nothing yet" line) needs no label.
          if (cell.colSpan === 1 && labels[column]) {
            cell.dataset.label = labels[column];
          }
          column += cell.colSpan;
        });
      });
    });
  });
})();
