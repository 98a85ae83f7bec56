// An independent SMART App Launch server for tests/independent: panva's oidc-provider (OpenID Certified),
// which the project did not write, plus a thin SMART shim:
//   - /fhir/.well-known/smart-configuration (SMART discovery; oidc-provider serves only OIDC discovery);
//   - `launch` and `aud` accepted on /auth (extraParams; aud must be the FHIR base);
//   - the launch context (`patient`, `need_patient_banner`) added to the token response by a post-middleware;
//   - `fhirUser` as a claim of the `fhirUser` scope, put in the id_token;
//   - automatic login + consent for one fixed user (no UI);
//   - a tiny read-only FHIR R4 API over one patient Bundle, behind the access tokens oidc-provider issued.
// Settings come from the environment (see start.sh). Prints `READY <url>` when listening.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';

const env = process.env;
const HOST = env.SMART_HOST || '127.0.0.1';
const APP_URL = (env.SMART_APP_URL || 'http://127.0.0.1:8000').replace(/\/$/, '');
const BUNDLE_FILE = env.SMART_BUNDLE || new URL('../../config/sandbox/patients/sci-adult.json', import.meta.url).pathname;
const USER = env.SMART_USER || 'Practitioner/clinician-1';
const SECRET = env.SMART_CLIENT_SECRET || 'independent-secret';
const TYPES = ['Patient', 'MedicationStatement', 'MedicationRequest', 'Medication', 'Observation', 'Condition',
  'Device', 'DeviceUseStatement', 'Procedure', 'DocumentReference', 'PractitionerRole', 'DetectedIssue',
  'Provenance', 'QuestionnaireResponse', 'Task'];

// Every scope the app may ask for must be declared, or oidc-provider drops it from the grant.
const scopes = ['openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'offline_access', 'online_access'];
for (const level of ['patient', 'user']) {
  for (const type of [...TYPES, '*']) {
    for (const access of ['read', 'write', '*', 'r', 'rs', 's', 'c', 'cr', 'crs', 'cruds']) scopes.push(`${level}/${type}.${access}`);
  }
}

const bundle = JSON.parse(fs.readFileSync(BUNDLE_FILE, 'utf8'));
const resources = (bundle.entry || []).map((entry) => entry.resource).filter(Boolean);
const patient = resources.find((resource) => resource.resourceType === 'Patient');
const contexts = new Map(); // grant id -> SMART launch context

const server = http.createServer((req, res) => route(req, res).catch((error) => {
  console.error(error);
  if (!res.headersSent) send(res, 500, { error: 'server_error' });
}));
await new Promise((resolve) => server.listen(Number(env.SMART_PORT || 0), HOST, resolve));
const BASE = `http://${HOST}:${server.address().port}`;
const FHIR_BASE = `${BASE}/fhir`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(BASE, {
  clients: [
    { // private_key_jwt with the app's published JWKS
      client_id: 'itb-jwt', token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES384',
      jwks_uri: `${APP_URL}/.well-known/jwks.json`, redirect_uris: [`${APP_URL}/callback`],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    },
    { // client_secret_basic
      client_id: 'itb-secret', client_secret: SECRET, token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: [`${APP_URL}/callback`], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true }, // S256 is the only method oidc-provider 9 supports
  scopes,
  claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
  conformIdTokenClaims: false, // scope-requested claims (fhirUser) go into the id_token, as SMART expects
  extraParams: {
    launch: null,
    async aud(ctx, value) { // SMART: aud SHALL be the FHIR base the app will call
      if (value !== undefined && value.replace(/\/$/, '') !== FHIR_BASE) throw new errors.InvalidRequest('aud is not this server\'s FHIR base');
    },
  },
  enabledJWA: {
    clientAuthSigningAlgValues: ['RS256', 'RS384', 'ES256', 'ES384'],
    idTokenSigningAlgValues: ['RS256'],
  },
  // SMART issues refresh tokens for offline_access without prompt=consent; OIDC Core drops offline_access
  // unless prompt=consent (oidc-provider follows OIDC), so issue them whenever the client may refresh.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, RefreshToken: 86400, Interaction: 600, Session: 86400, Grant: 86400 },
  // oidc-provider 9 refuses to fetch from special-use IPs (SSRF protection); the app's jwks_uri is on
  // loopback in tests, so only fetches to the registered app origin skip that guard.
  fetch: (url, options) => {
    if (new URL(url).origin === new URL(APP_URL).origin) delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, fhirUser: `${FHIR_BASE}/${sub}` }),
  }),
});

// Errors go to the log (start.sh keeps it in ${ITB_RUN_DIR}/independent-smart.log), with oidc-provider's detail.
for (const event of ['grant.error', 'authorization.error', 'server_error', 'interaction.error']) {
  provider.on(event, (ctx, error) => console.error(event, error.error || error.name, error.error_description || '', error.error_detail || '', error.cause ? String(error.cause.cause || error.cause) : ''));
}

// The token response carries the SMART launch context of the grant (SMART App Launch 2.2 §token response).
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route !== 'token' || ctx.status !== 200 || !ctx.body?.access_token) return;
  const context = contexts.get(ctx.oidc.entities.Grant?.jti);
  if (context) Object.assign(ctx.body, context);
});

async function route(req, res) {
  const url = new URL(req.url, BASE);
  if (url.pathname === '/fhir/.well-known/smart-configuration') return send(res, 200, smartConfiguration());
  if (url.pathname.startsWith('/interaction/')) return interaction(req, res);
  if (url.pathname === '/fhir' || url.pathname.startsWith('/fhir/')) return fhir(req, res, url);
  return provider.callback()(req, res);
}

function smartConfiguration() {
  return {
    issuer: BASE,
    jwks_uri: `${BASE}/jwks`,
    authorization_endpoint: `${BASE}/auth`,
    token_endpoint: `${BASE}/token`,
    grant_types_supported: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    scopes_supported: scopes.filter((scope) => !scope.includes('/') || scope.startsWith('launch')),
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: ['launch-ehr', 'launch-standalone', 'client-confidential-symmetric',
      'client-confidential-asymmetric', 'context-ehr-patient', 'context-standalone-patient', 'context-banner',
      'sso-openid-connect', 'permission-offline', 'permission-patient', 'permission-v1'],
  };
}

// Log in the fixed user and consent to everything asked for: this server has no UI.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    return provider.interactionFinished(req, res, { login: { accountId: USER } }, { mergeWithLastSubmission: false });
  }
  const { params, prompt } = details;
  const requested = String(params.scope || '').split(' ');
  if (requested.includes('launch') && !params.launch) {
    return provider.interactionFinished(req, res, { error: 'invalid_request', error_description: 'launch scope without a launch parameter' });
  }
  const grant = details.grantId ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  const grantId = await grant.save();
  // Every launch of this one-patient server opens the Bundle's patient, EHR (launch) and standalone alike.
  contexts.set(grantId, { patient: patient.id, need_patient_banner: true });
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

function outcome(res, status, diagnostics) {
  send(res, status, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing', diagnostics }] },
    'application/fhir+json');
}

async function fhir(req, res, url) {
  const path = url.pathname.replace(/^\/fhir\/?/, '').split('/').filter(Boolean);
  if (path[0] === 'metadata') return send(res, 200, capabilityStatement(), 'application/fhir+json');
  const token = /^Bearer (.+)$/i.exec(req.headers.authorization || '')?.[1];
  const accessToken = token ? await provider.AccessToken.find(token) : undefined;
  if (!accessToken || accessToken.isExpired) {
    res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
    return outcome(res, 401, 'a valid access token is required');
  }
  const context = contexts.get(accessToken.grantId);
  if (req.method !== 'GET') return outcome(res, 405, 'this server is read-only');
  const [type, id] = path;
  if (!TYPES.includes(type)) return outcome(res, 404, `unknown resource type ${type}`);
  const visible = resources.filter((resource) => inCompartment(resource, context?.patient));
  if (id) {
    const found = visible.find((resource) => resource.resourceType === type && resource.id === id);
    return found ? send(res, 200, found, 'application/fhir+json') : outcome(res, 404, `${type}/${id} not found`);
  }
  return send(res, 200, search(type, url.searchParams, visible), 'application/fhir+json');
}

function capabilityStatement() {
  const offered = [...new Set(['Patient', ...resources.map((resource) => resource.resourceType)])];
  return {
    resourceType: 'CapabilityStatement', status: 'active', kind: 'instance', fhirVersion: '4.0.1',
    date: new Date().toISOString().slice(0, 10), format: ['json'],
    rest: [{
      mode: 'server',
      security: { service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }] },
      resource: offered.map((type) => ({ type, interaction: [{ code: 'read' }, { code: 'search-type' }] })),
    }],
  };
}

function patientOf(resource) {
  if (resource.resourceType === 'Patient') return resource.id;
  const ref = (resource.subject || resource.patient)?.reference || '';
  return ref.startsWith('Patient/') ? ref.slice(8) : undefined;
}

function inCompartment(resource, patientId) {
  if (!patientId) return false;
  return resource.resourceType === 'Medication' || patientOf(resource) === patientId;
}

function codings(resource, element) {
  const value = resource[element];
  const concepts = Array.isArray(value) ? value : value ? [value] : [];
  return concepts.flatMap((concept) => concept.coding || []);
}

function tokenMatches(list, wanted) {
  return wanted.split(',').some((token) => {
    const [system, code] = token.includes('|') ? token.split('|') : [undefined, token];
    return list.some((coding) => coding.code === code && (system === undefined || coding.system === system));
  });
}

function dateOf(resource) {
  return resource.effectiveDateTime || resource.effectivePeriod?.start || resource.issued || resource.recordedDate
    || resource.onsetDateTime || resource.performedDateTime || resource.performedPeriod?.start || resource.authoredOn || '';
}

function dateMatches(resource, value) {
  const [, prefix = 'eq', wanted] = /^(eq|ne|gt|lt|ge|le)?(.+)$/.exec(value);
  const actual = dateOf(resource).slice(0, wanted.length);
  if (!actual) return false;
  return { eq: actual === wanted, ne: actual !== wanted, gt: actual > wanted, lt: actual < wanted,
    ge: actual >= wanted, le: actual <= wanted }[prefix];
}

function search(type, params, visible) {
  let matches = visible.filter((resource) => resource.resourceType === type);
  for (const [name, value] of params) {
    if (name === '_id') matches = matches.filter((resource) => value.split(',').includes(resource.id));
    if (name === 'patient' || name === 'subject') {
      const id = value.replace(/^Patient\//, '');
      matches = matches.filter((resource) => patientOf(resource) === id);
    }
    if (name === 'category') matches = matches.filter((resource) => tokenMatches(codings(resource, 'category'), value));
    if (name === 'code') matches = matches.filter((resource) => tokenMatches(codings(resource, 'code'), value));
    if (name === 'date') matches = matches.filter((resource) => dateMatches(resource, value));
  }
  if (params.get('_sort') === '-date') matches.sort((a, b) => dateOf(b).localeCompare(dateOf(a)));
  const included = [];
  for (const include of params.getAll('_include')) {
    const [, element] = include.split(':');
    for (const resource of matches) {
      const ref = resource[`${element}Reference`]?.reference || resource[element]?.reference;
      const target = ref && visible.find((candidate) => `${candidate.resourceType}/${candidate.id}` === ref);
      if (target && !included.includes(target)) included.push(target);
    }
  }
  const entry = (resource, mode) => ({ fullUrl: `${FHIR_BASE}/${resource.resourceType}/${resource.id}`, resource, search: { mode } });
  return {
    resourceType: 'Bundle', type: 'searchset', total: matches.length,
    link: [{ relation: 'self', url: `${FHIR_BASE}/${type}?${params}` }],
    entry: [...matches.map((resource) => entry(resource, 'match')), ...included.map((resource) => entry(resource, 'include'))],
  };
}

if (env.SMART_URL_FILE) fs.writeFileSync(env.SMART_URL_FILE, `${FHIR_BASE}\n`);
console.log(`READY ${FHIR_BASE}`);
