import { lazy, Suspense } from "react";
import { Navigate, Route, Routes } from "react-router-dom";

import { Layout } from "./Layout";

// One chunk per page: the first screen loads only the shell and the page it shows.
const Overview = lazy(() => import("./pages/Overview"));
const Connections = lazy(() => import("./pages/Connections"));
const ConnectionEdit = lazy(() => import("./pages/ConnectionEdit"));
const Logs = lazy(() => import("./pages/Logs"));
const Analytics = lazy(() => import("./pages/Analytics"));
const Uploads = lazy(() => import("./pages/Uploads"));
const Alerts = lazy(() => import("./pages/Alerts"));
const Administration = lazy(() => import("./pages/Administration"));
const Builder = lazy(() => import("./pages/Builder"));
const SchemaMapping = lazy(() => import("./pages/SchemaMapping"));

export function App() {
  return (
    <Layout>
      <Suspense fallback={<p role="status">Loading…</p>}>
        <Routes>
          <Route path="/" element={<Navigate to="/overview" replace />} />
          <Route path="/overview" element={<Overview />} />
          <Route path="/connections" element={<Connections />} />
          <Route path="/connections/new" element={<ConnectionEdit />} />
          <Route path="/connections/:name" element={<ConnectionEdit />} />
          <Route path="/builder" element={<Builder />} />
          <Route path="/builder/new-pipeline" element={<Builder create />} />
          <Route path="/builder/:name" element={<Builder />} />
          <Route path="/pipelines/:name/sources/:source/mapping" element={<SchemaMapping />} />
          <Route path="/uploads" element={<Uploads />} />
          <Route path="/logs" element={<Logs />} />
          <Route path="/alerts" element={<Alerts />} />
          <Route path="/analytics" element={<Analytics />} />
          <Route path="/admin" element={<Administration />} />
          <Route path="*" element={<NotFound />} />
        </Routes>
      </Suspense>
    </Layout>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>This address is not a page of the Console; pick one from the navigation.</p>
    </section>
  );
}
