import { describe, expect, it } from "vitest";

import { applyRun, dismiss, type LiveEvent, mergeLines, mergeRun, NO_NOTICES, seedNotices } from "./live";

let storage = 0;
function run(runId: string, status: string, pipeline = "sales"): LiveEvent {
  storage += 1;
  return { id: String(storage), kind: "run", data: { run_id: runId, storage_id: storage, timestamp: 1000 + storage,
    time: "2026-12-08T01:00:00+00:00", level: "INFO", step_key: null, event_type: `RUN_${status}`,
    message: status, job_name: `${pipeline}_job`, error: null, pipeline, status } };
}

describe("run notices", () => {
  it("notices a failure, and the next success of that pipeline as a recovery", () => {
    let s = applyRun(NO_NOTICES, run("a1", "STARTED"));
    expect(s.notices).toEqual([]);
    s = applyRun(s, run("a1", "FAILURE"));
    expect(s.notices.map((n) => [n.kind, n.pipeline, n.runId])).toEqual([["failed", "sales", "a1"]]);
    s = applyRun(s, run("b2", "SUCCESS", "shop")); // another pipeline: no recovery of sales
    expect(s.notices).toHaveLength(1);
    s = applyRun(s, run("c3", "SUCCESS"));
    expect(s.notices.map((n) => n.kind)).toEqual(["recovered", "failed"]);
    s = applyRun(s, run("d4", "SUCCESS")); // success after success: nothing to say
    expect(s.notices).toHaveLength(2);
  });

  it("changes nothing when the same status arrives again (a resumed stream's replay)", () => {
    const once = applyRun(NO_NOTICES, run("a1", "FAILURE"));
    expect(applyRun(once, run("a1", "FAILURE"))).toBe(once);
  });

  it("a success after a failure the page loaded (not one it saw live) is a recovery", () => {
    const seeded = seedNotices([{ pipeline: "sales", status: "FAILURE", time: 20 },
      { pipeline: "sales", status: "SUCCESS", time: 10 }, { pipeline: "shop", status: "SUCCESS", time: 5 }]);
    expect(seeded.last).toEqual({ sales: "FAILURE", shop: "SUCCESS" });
    expect(applyRun(seeded, run("n1", "SUCCESS")).notices[0].kind).toBe("recovered");
    expect(applyRun(seeded, run("n2", "SUCCESS", "shop")).notices).toEqual([]);
  });

  it("canceled runs neither fail nor recover a pipeline; notices are capped and dismissable", () => {
    let s = applyRun(NO_NOTICES, run("a1", "FAILURE"));
    s = applyRun(s, run("a2", "CANCELED"));
    expect(s.last.sales).toBe("FAILURE");
    for (let i = 0; i < 30; i++) s = applyRun(s, run(`f${i}`, "FAILURE"));
    expect(s.notices).toHaveLength(20);
    expect(dismiss(s, s.notices[0].key).notices).toHaveLength(19);
  });
});

describe("merging live events into what the page shows", () => {
  const base = [{ runId: "a1", jobName: "sales_job", status: "STARTED", creationTime: 1, startTime: 1 }];

  it("updates a known run and adds a new one first", () => {
    const updated = mergeRun(base, run("a1", "SUCCESS"));
    expect(updated).toHaveLength(1);
    expect(updated[0].status).toBe("SUCCESS");
    const added = mergeRun(updated, run("z9", "QUEUED", "shop"));
    expect(added.map((r) => [r.runId, r.jobName, r.status])).toEqual([["z9", "shop_job", "QUEUED"], ["a1",
      "sales_job", "SUCCESS"]]);
  });

  it("keeps each log line once, live lines first", () => {
    const line = (id: number) => ({ ...run("r", "STARTED").data, storage_id: id });
    expect(mergeLines([line(3), line(2)], [line(2), line(1)]).map((l) => l.storage_id)).toEqual([3, 2, 1]);
  });
});
