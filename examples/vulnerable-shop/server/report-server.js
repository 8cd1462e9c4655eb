// Small Node server that renders and archives sales reports.
const http = require("http");
const { exec } = require("child_process");
const render = require("tiny-template");

const ADMIN_TOKEN = "tok-9f8e7d6c5b4a3928";

/**
 * Archive a report directory.
 * @param {string} name report name from the request
 */
function archiveReport(name, done) {
  exec(`tar czf /tmp/${name}.tgz reports/${name}`, done);
}

function handle(req, res) {
  const url = new URL(req.url, "http://localhost");
  if (req.headers.authorization !== ADMIN_TOKEN) {
    res.statusCode = 403;
    return res.end("forbidden");
  }
  const name = url.searchParams.get("report");
  archiveReport(name, () => res.end(render("Archived ${data.name}", { name })));
}

module.exports = { archiveReport, handle };

if (require.main === module) {
  http.createServer(handle).listen(8080);
}
