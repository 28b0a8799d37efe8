#!/usr/bin/env node
// Compiles contracts/src/**/*.sol with the pinned solc-js (standard JSON) and writes
// artifacts/<ContractName>.json (+ artifacts/<ContractName>.abi.json) for every deployable
// contract. Output is deterministic: same sources + same compiler => same bytes.
//
//   node build.js          compile and (re)write the artifacts
//   node build.js --check  compile in memory; exit 1 naming every stale or missing artifact
"use strict";

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const solc = require("solc");

const ROOT = __dirname;
const SRC = path.join(ROOT, "src");
const ARTIFACTS = path.join(ROOT, "artifacts");
const NODE_MODULES = path.join(ROOT, "node_modules");

// Contracts we deploy and therefore ship artifacts for.
const DEPLOYED = ["SmartMeshToken", "SmartMeshVesting", "SecretRegistry", "TokenNetwork", "ReentrantToken"];

const SETTINGS = {
  optimizer: { enabled: true, runs: 1000000 },
  viaIR: true,
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function log(msg) {
  process.stderr.write(`[build.js] ${msg}\n`);
}

function listSol(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listSol(full));
    else if (entry.name.endsWith(".sol")) out.push(full);
  }
  return out;
}

// Source unit names: "src/..." for ours, "@openzeppelin/contracts/..." for libraries.
function readImport(unitName) {
  const candidates = [path.join(ROOT, unitName), path.join(NODE_MODULES, unitName)];
  for (const file of candidates) {
    // never escape the project directory
    if (!path.resolve(file).startsWith(ROOT + path.sep)) continue;
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${unitName} (run npm ci in contracts/)` };
}

function compile() {
  if (!fs.existsSync(path.join(NODE_MODULES, "@openzeppelin", "contracts"))) {
    throw new Error("node_modules missing: run `npm ci` in contracts/");
  }
  const sources = {};
  for (const file of listSol(SRC).sort()) {
    const unit = path.relative(ROOT, file).split(path.sep).join("/");
    sources[unit] = { content: fs.readFileSync(file, "utf8") };
  }
  log(`solc ${solc.version()}: compiling ${Object.keys(sources).length} sources (viaIR, runs ${SETTINGS.optimizer.runs}) ...`);
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const used = {};
  const findImports = (unit) => {
    const r = readImport(unit);
    if (r.contents !== undefined) used[unit] = r.contents;
    return r;
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    if (e.severity !== "error") {
      const where = e.sourceLocation ? ` (${e.sourceLocation.file})` : "";
      log(`${e.severity}: ${e.message.split("\n")[0]}${where}`);
    }
  }
  if (errors.length) {
    for (const e of errors) process.stderr.write(e.formattedMessage + "\n");
    throw new Error(`compilation failed with ${errors.length} error(s)`);
  }

  // sha256 over every source unit that took part (ours + libraries), sorted by unit name:
  // for each: name, NUL, content, NUL.
  const all = {};
  for (const [unit, { content }] of Object.entries(sources)) all[unit] = content;
  Object.assign(all, used);
  const hash = crypto.createHash("sha256");
  for (const unit of Object.keys(all).sort()) {
    hash.update(unit);
    hash.update("\0");
    hash.update(all[unit]);
    hash.update("\0");
  }
  const sourceHash = "0x" + hash.digest("hex");

  const files = {};
  for (const name of DEPLOYED) {
    let found = null;
    for (const [unit, contracts] of Object.entries(output.contracts)) {
      if (contracts[name]) {
        if (found) throw new Error(`contract name ${name} defined twice`);
        found = { unit, c: contracts[name] };
      }
    }
    if (!found) throw new Error(`contract ${name} not found in sources`);
    const { unit, c } = found;
    const bytecode = "0x" + c.evm.bytecode.object;
    const deployedBytecode = "0x" + c.evm.deployedBytecode.object;
    const size = (deployedBytecode.length - 2) / 2;
    if (size > 24576) throw new Error(`${name}: runtime code ${size} bytes exceeds the EIP-170 limit`);
    log(`${name} (${unit}): runtime ${size} bytes, initcode ${(bytecode.length - 2) / 2} bytes`);
    const artifact = {
      contractName: name,
      sourceName: unit,
      abi: c.abi,
      bytecode,
      deployedBytecode,
      solcVersion: solc.version(),
      sourceHash,
      settings: {
        optimizer: SETTINGS.optimizer,
        viaIR: SETTINGS.viaIR,
        evmVersion: SETTINGS.evmVersion,
        metadata: SETTINGS.metadata,
      },
    };
    files[`${name}.json`] = JSON.stringify(artifact, null, 2) + "\n";
    files[`${name}.abi.json`] = JSON.stringify(c.abi, null, 2) + "\n";
  }
  return files;
}

function main() {
  const check = process.argv.includes("--check");
  let files;
  try {
    files = compile();
  } catch (e) {
    log(`error: ${e.message}`);
    process.exit(2);
  }
  if (check) {
    const stale = [];
    for (const [file, content] of Object.entries(files)) {
      const p = path.join(ARTIFACTS, file);
      const current = fs.existsSync(p) ? fs.readFileSync(p, "utf8") : null;
      if (current === null) stale.push(`${file} (missing)`);
      else if (current !== content) stale.push(`${file} (differs)`);
    }
    if (stale.length) {
      log(`STALE artifacts: ${stale.join(", ")}`);
      log("run `node build.js` in contracts/ and commit the result");
      process.exit(1);
    }
    log(`all ${Object.keys(files).length} artifacts are fresh`);
    return;
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    const p = path.join(ARTIFACTS, file);
    const current = fs.existsSync(p) ? fs.readFileSync(p, "utf8") : null;
    if (current === content) {
      log(`unchanged artifacts/${file}`);
    } else {
      fs.writeFileSync(p, content);
      log(`wrote artifacts/${file}`);
    }
  }
}

main();
