const http = require("node:http");
const fs = require("node:fs");
const server = http.createServer((req, res) => {
  const file = `dist${req.url === "/" ? "/index.html" : req.url}`;
  fs.readFile(file, (error, body) => {
    res.writeHead(error ? 404 : 200, { "Content-Type": "text/html" });
    res.end(error ? "not found" : body);
  });
});
server.listen(0, "127.0.0.1", () =>
  console.log(`Listening on http://127.0.0.1:${server.address().port}`),
);
