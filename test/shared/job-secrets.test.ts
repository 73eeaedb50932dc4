import { describe, expect, it } from "vitest";
import {
  importJobSecretsKey,
  jobSecretsKeyProblem,
  openJobValues,
  SealedValuesError,
  sealJobValues,
} from "../../src/shared/job-secrets.ts";
import { openRunRequest, type RunRequest, sealRunRequest } from "../../src/shared/job-spec.ts";

// Runs in Node and in workerd: the Worker seals with one runtime's WebCrypto, the runner opens
// with the other's.
function randomKeyText(): string {
  let binary = "";
  for (const byte of crypto.getRandomValues(new Uint8Array(32)))
    binary += String.fromCharCode(byte);
  return btoa(binary);
}

const request: RunRequest = {
  job_id: "job_sealed",
  owner: "user_sealed",
  spec: {
    steps: [{ name: "Build", phase: "build", command: "npm run build" }],
    env: { NODE_ENV: "production", NPM_TOKEN: "npm_envTokenValue1234567890" },
    secrets: { STRIPE_KEY: "sk_live_secretValue0987654321", UNICODE_VALUE: "pässwörd ✓ 🔑" },
    files: { "package.json": "{}" },
  },
};

describe("job secrets in transit", () => {
  it("seals env and secrets so no value is in the message, and opens them again", async () => {
    const key = await importJobSecretsKey(randomKeyText());
    const sealed = await sealRunRequest(key, request);
    const wire = JSON.stringify(sealed);
    for (const value of [
      "npm_envTokenValue1234567890",
      "sk_live_secretValue0987654321",
      "STRIPE_KEY",
      "NODE_ENV",
      "production",
    ])
      expect(wire).not.toContain(value);
    expect(sealed.spec).toEqual({ steps: request.spec.steps, files: request.spec.files });
    expect(await openRunRequest(key, sealed)).toEqual(request);
  });

  it("uses a fresh IV each time: the same values never seal to the same text", async () => {
    const key = await importJobSecretsKey(randomKeyText());
    const values = { env: {}, secrets: { A: "same-value-each-time" } };
    const first = await sealJobValues(key, "job_a", values);
    const second = await sealJobValues(key, "job_a", values);
    expect(first).not.toBe(second);
  });

  it("refuses another key, another job's values and an altered ciphertext", async () => {
    const key = await importJobSecretsKey(randomKeyText());
    const other = await importJobSecretsKey(randomKeyText());
    const sealed = await sealJobValues(key, "job_a", { env: {}, secrets: { A: "value-a" } });
    await expect(openJobValues(other, "job_a", sealed)).rejects.toBeInstanceOf(SealedValuesError);
    await expect(openJobValues(key, "job_b", sealed)).rejects.toBeInstanceOf(SealedValuesError);
    const last = sealed.at(-2) === "A" ? "B" : "A";
    const altered = `${sealed.slice(0, -2)}${last}${sealed.slice(-1)}`;
    await expect(openJobValues(key, "job_a", altered)).rejects.toBeInstanceOf(SealedValuesError);
    await expect(openJobValues(key, "job_a", "v2.abc.def")).rejects.toBeInstanceOf(
      SealedValuesError,
    );
  });

  it.each([
    ["", /not base64/],
    ["not base64 at all!", /not base64/],
    [btoa("too short"), /32 bytes/],
  ])("names the problem with the key %j", async (value, message) => {
    expect(jobSecretsKeyProblem(value)).toMatch(message);
    await expect(importJobSecretsKey(value)).rejects.toThrow(message);
  });

  it("takes the key as base64 or base64url", () => {
    const standard = randomKeyText();
    const url = standard.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    expect(jobSecretsKeyProblem(standard)).toBeNull();
    expect(jobSecretsKeyProblem(url)).toBeNull();
  });
});
