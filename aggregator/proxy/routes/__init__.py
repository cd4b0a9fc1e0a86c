"""The routes the proxy decides on itself: GraphQL, asset reports, its own /_auth pages and API."""
