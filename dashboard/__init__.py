"""The live dashboard at ``/dashboard``: a page and its static assets (Chart.js, vendored with its
license: the page works offline), and the one JSON snapshot it polls."""
