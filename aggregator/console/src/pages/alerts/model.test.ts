import { describe, expect, it } from "vitest";

import { envName, otherProblems, problemsAt, withChannel, withRule } from "./model";

describe("alert block model", () => {
  it("reads only {env: NAME} as a secret reference", () => {
    expect(envName({ env: "SMTP_PASSWORD" })).toBe("SMTP_PASSWORD");
    expect(envName("https://hooks.example/x")).toBeUndefined();
    expect(envName({ env: "A", other: 1 })).toBeUndefined();
  });

  it("keeps keys the page does not edit and drops emptied optional fields", () => {
    const block = { quiet_hours: { start: "22:00", end: "07:00" }, channels: { a: { type: "slack", url: { env: "A" } } } };
    const next = withRule(withChannel(block, "b", { type: "webhook", url: "https://h.example/", secret: undefined }), 0,
      { when: "run_failure", channels: ["a", "b"], recovery: undefined });
    expect(next).toEqual({ quiet_hours: block.quiet_hours, channels: { a: block.channels.a,
      b: { type: "webhook", url: "https://h.example/" } }, rules: [{ when: "run_failure", channels: ["a", "b"] }] });
  });

  it("places each server problem under its channel or rule by field path", () => {
    const problems = [{ field: "alerts.channels.a.url.env" }, { field: "alerts.channels.ab.to" },
      { field: "alerts.rules[1].channels[0]" }, { field: "alerts.rules[10].when" }, { field: "alerts.delivery.attempts" }];
    expect(problemsAt(problems, "alerts.channels.a")).toEqual([problems[0]]);
    expect(problemsAt(problems, "alerts.rules[1]")).toEqual([problems[2]]);
    const block = { channels: { a: {}, ab: {} }, rules: [{}, {}] };
    expect(otherProblems(problems, block)).toEqual([problems[3], problems[4]]);
  });
});
