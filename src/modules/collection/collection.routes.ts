// The pages people reach from links: /c (confirm), /u (unsubscribe), /p (preferences).
// A GET only shows; only a POST changes anything (mail scanners pre-fetch links).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { chooseLang, type Lang, words } from '../../pages/i18n.ts';
import { sendMessagePage, sendPage, stylesheet } from '../../pages/render.ts';
import type { AppContext, RequestContext } from '../../platform/context.ts';
import { type App, problems } from '../../platform/http.ts';
import { type TokenKind, verifyToken } from '../../platform/tokens.ts';
import { campaignLink, confirmDelivery, deliveryIdOfRef, recordClick } from '../campaigns/campaigns.confirm.ts';
import { readShortDeliveryToken } from '../campaigns/campaigns.dispatch.ts';
import { findContactRow } from '../contacts/index.ts';
import {
  confirmDoubleOptIn,
  type Evidence,
  pendingConfirmations,
  preferenceItems,
  preferencesLink,
  requestPreferencesLink,
  savePreferences,
  sendEmail,
  unsubscribe,
  unsubscribeView,
} from './collection.service.ts';

const TokenParams = Type.Object({ token: Type.String({ minLength: 1, maxLength: 1000 }) });
const LangQuery = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })) });
const FormBody = Type.Record(Type.String(), Type.Union([Type.String(), Type.Array(Type.String())]));

type Req = Pick<FastifyRequest, 'headers'> & { params: { token: string }; query: { lang?: string | undefined } };

export function evidenceOf(ctx: AppContext, request: FastifyRequest, path: string, lang: Lang): Evidence {
  return {
    ...(request.ip ? { ip: request.ip } : {}),
    ...(request.headers['user-agent'] ? { userAgent: request.headers['user-agent'].slice(0, 1000) } : {}),
    url: `${ctx.config.publicUrl}${path}`,
    locale: lang,
  };
}

const personRequest = (request: FastifyRequest): RequestContext => ({ ...request.requestContext, actor: { type: 'person' } });

export function messageRoutes(app: App, ctx: AppContext): void {
  app.post(
    '/v1/messages',
    {
      config: { scope: 'write' },
      schema: {
        tags: ['outbox'],
        summary: 'Send one email to one contact (marketing templates: only if the decision allows it)',
        body: Type.Object(
          {
            contactId: Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' }),
            template: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]*$', maxLength: 64 }),
            purpose: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]*$', maxLength: 64 })),
            vars: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 50 })),
          },
          { additionalProperties: false },
        ),
        response: { 202: Type.Object({ id: Type.String(), status: Type.String() }), ...problems(404, 410) },
      },
    },
    async (request, reply) => reply.code(202).send(await sendEmail(ctx, request.body)),
  );
}

export function collectionRoutes(app: App, ctx: AppContext): void {
  const postLimit = { rateLimit: { max: ctx.config.rateLimitPerMinute, timeWindow: 60_000 }, page: true } as const;

  /** Checks a link token; on failure answers the friendly page and returns undefined. */
  async function claimsOr(request: Req, reply: FastifyReply, kind: TokenKind) {
    const check = verifyToken(ctx.secret, request.params.token, kind, ctx.clock.now());
    if (check.ok) return check.claims;
    const lang = chooseLang(request.query.lang, null, request.headers['accept-language']);
    await sendMessagePage(
      ctx,
      reply,
      check.reason === 'expired' ? { title: 'expired_title', text: 'expired_text' } : { title: 'invalid_title', text: 'invalid_text' },
      { lang, status: check.reason === 'expired' ? 410 : 400 },
    );
    return undefined;
  }

  /** A valid link's claims, its contact, and the page language (the link's, the contact's, the browser's). */
  async function linkOr(request: Req, reply: FastifyReply, kind: TokenKind) {
    const claims = await claimsOr(request, reply, kind);
    if (!claims) return undefined;
    const contact = await findContactRow(ctx.db.kysely, claims.contactId);
    return { claims, contact, lang: chooseLang(request.query.lang, contact?.locale, request.headers['accept-language']) };
  }

  /**
   * A campaign confirm link: the short SMS form ("<delivery>.<signature>"), or a signed token whose
   * ref names a campaign delivery. undefined: not a campaign link; null: answered (bad link).
   */
  async function campaignDeliveryOf(request: Req, reply: FastifyReply) {
    const short = readShortDeliveryToken(ctx.secret, request.params.token);
    if (short !== undefined) return { deliveryId: short, contactId: undefined };
    if (/^\d+\./.test(request.params.token)) {
      await claimsOr({ ...request, params: { token: '' } }, reply, 'confirm');
      return null;
    }
    const check = verifyToken(ctx.secret, request.params.token, 'confirm', ctx.clock.now());
    const deliveryId = check.ok ? deliveryIdOfRef(check.claims.ref) : undefined;
    return deliveryId === undefined || !check.ok ? undefined : { deliveryId, contactId: check.claims.contactId };
  }

  async function campaignPage(request: Req, reply: FastifyReply, target: { deliveryId: number; contactId: string | undefined }) {
    const contact = target.contactId ? await findContactRow(ctx.db.kysely, target.contactId) : undefined;
    const lang = chooseLang(request.query.lang, contact?.locale, request.headers['accept-language']);
    const link = await campaignLink(ctx, target.deliveryId, target.contactId, lang);
    if (!link) {
      await sendMessagePage(ctx, reply, { title: 'invalid_title', text: 'invalid_text' }, { lang, status: 400 });
      return undefined;
    }
    return { link, lang };
  }

  async function showCampaignConfirm(request: Req, reply: FastifyReply, target: { deliveryId: number; contactId: string | undefined }) {
    const page = await campaignPage(request, reply, target);
    if (!page) return reply;
    const { link, lang } = page;
    if (!['running', 'paused'].includes(link.campaign.status) || Date.parse(link.campaign.deadline) <= ctx.clock.now().getTime())
      return sendMessagePage(ctx, reply, { title: 'closed_title', text: 'closed_text' }, { lang, status: 410 });
    await recordClick(ctx, link.delivery);
    if (link.delivery.confirmed_at) return sendMessagePage(ctx, reply, { title: 'used_title', text: 'used_text' }, { lang });
    const path = `/c/${request.params.token}`;
    return sendPage(
      ctx,
      reply,
      'confirm',
      { items: link.items, action: `${path}?lang=${lang}`, landing: link.campaign.confirmation === 'landing', campaign: true },
      { lang, path },
    );
  }

  async function postCampaignConfirm(
    request: Req & { body?: unknown; ip: string },
    reply: FastifyReply,
    target: { deliveryId: number; contactId: string | undefined },
  ) {
    const page = await campaignPage(request, reply, target);
    if (!page) return reply;
    const { link, lang } = page;
    const body = (request.body ?? {}) as Record<string, string | string[]>;
    const ticked = ([] as string[]).concat(body.consent ?? []).map((v) => v.split(':')[0] as string);
    const outcome = await confirmDelivery(ctx, personRequest(request as FastifyRequest), link.delivery.id, {
      source: 'campaign',
      ...(link.campaign.confirmation === 'landing' ? { purposes: ticked } : {}),
      evidence: evidenceOf(ctx, request as FastifyRequest, '/c/[token]', lang),
    });
    if (outcome === 'used') return sendMessagePage(ctx, reply, { title: 'used_title', text: 'used_text' }, { lang });
    if (outcome === 'closed') return sendMessagePage(ctx, reply, { title: 'closed_title', text: 'closed_text' }, { lang, status: 410 });
    if (outcome === 'nothing') return sendMessagePage(ctx, reply, { title: 'nothing_title', text: 'nothing_text' }, { lang });
    return sendMessagePage(ctx, reply, { title: 'confirmed_title', text: 'confirmed_text' }, { lang });
  }

  app.get('/assets/assent.css', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(stylesheet),
  );

  // Double opt-in (and, later, campaign) confirmations.
  app.get(
    '/c/:token',
    { schema: { hide: true, params: TokenParams, querystring: LangQuery }, config: { page: true } },
    async (request, reply) => {
      const campaignDelivery = await campaignDeliveryOf(request, reply);
      if (campaignDelivery === null) return reply;
      if (campaignDelivery) return showCampaignConfirm(request, reply, campaignDelivery);
      const link = await linkOr(request, reply, 'confirm');
      if (!link) return reply;
      const { claims, lang } = link;
      const used = await ctx.db.kysely.selectFrom('used_tokens').select('jti').where('jti', '=', claims.jti).executeTakeFirst();
      if (used) return sendMessagePage(ctx, reply, { title: 'used_title', text: 'used_text' }, { lang, status: 410 });
      const { items } = await pendingConfirmations(ctx, claims, lang);
      if (items.length === 0) return sendMessagePage(ctx, reply, { title: 'nothing_title', text: 'nothing_text' }, { lang });
      const path = `/c/${request.params.token}`;
      return sendPage(ctx, reply, 'confirm', { items, action: `${path}?lang=${lang}`, landing: false }, { lang, path });
    },
  );

  app.post(
    '/c/:token',
    { schema: { hide: true, params: TokenParams, querystring: LangQuery, body: Type.Optional(FormBody) }, config: postLimit },
    async (request, reply) => {
      const campaignDelivery = await campaignDeliveryOf(request, reply);
      if (campaignDelivery === null) return reply;
      if (campaignDelivery) return postCampaignConfirm(request, reply, campaignDelivery);
      const link = await linkOr(request, reply, 'confirm');
      if (!link) return reply;
      const { claims, lang } = link;
      const outcome = await confirmDoubleOptIn(ctx, personRequest(request), claims, evidenceOf(ctx, request, '/c/[token]', lang));
      if (outcome === 'used') return sendMessagePage(ctx, reply, { title: 'used_title', text: 'used_text' }, { lang, status: 410 });
      if (outcome === 'nothing') return sendMessagePage(ctx, reply, { title: 'nothing_title', text: 'nothing_text' }, { lang });
      return sendMessagePage(ctx, reply, { title: 'confirmed_title', text: 'confirmed_text' }, { lang });
    },
  );

  app.get(
    '/u/:token',
    { schema: { hide: true, params: TokenParams, querystring: LangQuery }, config: { page: true } },
    async (request, reply) => {
      const link = await linkOr(request, reply, 'unsubscribe');
      if (!link) return reply;
      const { claims, lang } = link;
      const view = await unsubscribeView(ctx, claims, lang);
      if (!view.contact) return sendMessagePage(ctx, reply, { title: 'unsubscribed_title', text: 'unsubscribed_text' }, { lang });
      const path = `/u/${request.params.token}`;
      return sendPage(
        ctx,
        reply,
        'unsubscribe',
        {
          items: view.items,
          all: claims.all ?? false,
          action: `${path}?lang=${lang}`,
          preferencesUrl: preferencesLink(ctx, claims.contactId),
        },
        { lang, path },
      );
    },
  );

  // A human click, or RFC 8058 one-click (body "List-Unsubscribe=One-Click"): no cookie, no CSRF token.
  app.post(
    '/u/:token',
    { schema: { hide: true, params: TokenParams, querystring: LangQuery, body: Type.Optional(FormBody) }, config: postLimit },
    async (request, reply) => {
      const link = await linkOr(request, reply, 'unsubscribe');
      if (!link) return reply;
      const { claims, lang } = link;
      const oneClick = (request.body as Record<string, unknown> | undefined)?.['List-Unsubscribe'] === 'One-Click';
      const evidence = { ...evidenceOf(ctx, request, '/u/[token]', lang), method: oneClick ? 'one-click (RFC 8058)' : 'unsubscribe page' };
      await unsubscribe(ctx, personRequest(request), claims, evidence);
      return sendMessagePage(ctx, reply, { title: 'unsubscribed_title', text: 'unsubscribed_text' }, { lang });
    },
  );

  app.get('/p', { schema: { hide: true, querystring: LangQuery }, config: { page: true } }, async (request, reply) => {
    const lang = chooseLang(request.query.lang, null, request.headers['accept-language']);
    return sendPage(ctx, reply, 'preferences-request', { invalid: false }, { lang, path: '/p' });
  });

  app.post(
    '/p',
    { schema: { hide: true, querystring: LangQuery, body: Type.Optional(FormBody) }, config: postLimit },
    async (request, reply) => {
      const lang = chooseLang(request.query.lang, null, request.headers['accept-language']);
      const email = (request.body as Record<string, unknown> | undefined)?.email;
      const outcome = await requestPreferencesLink(ctx, typeof email === 'string' ? email : '');
      if (outcome === 'invalid') return sendPage(ctx, reply, 'preferences-request', { invalid: true }, { lang, path: '/p', status: 400 });
      return sendMessagePage(ctx, reply, { title: 'request_sent_title', text: 'request_sent_text' }, { lang });
    },
  );

  const showPreferences = async (request: Req, reply: FastifyReply, saved: boolean) => {
    const link = await linkOr(request, reply, 'preferences');
    if (!link) return reply;
    const { contact, lang } = link;
    if (!contact || contact.erased_at)
      return sendMessagePage(ctx, reply, { title: 'invalid_title', text: 'invalid_text' }, { lang, status: 410 });
    const items = await preferenceItems(ctx, contact, lang);
    const path = `/p/${request.params.token}`;
    const t = words[lang] as unknown as Record<string, string>;
    return sendPage(
      ctx,
      reply,
      'preferences',
      { items: items.map((i) => ({ ...i, statusLabel: t[`status_${i.status}`] ?? i.status })), saved, action: `${path}?lang=${lang}` },
      { lang, path },
    );
  };

  app.get(
    '/p/:token',
    { schema: { hide: true, params: TokenParams, querystring: LangQuery }, config: { page: true } },
    async (request, reply) => showPreferences(request, reply, false),
  );

  app.post(
    '/p/:token',
    { schema: { hide: true, params: TokenParams, querystring: LangQuery, body: Type.Optional(FormBody) }, config: postLimit },
    async (request, reply) => {
      const link = await linkOr(request, reply, 'preferences');
      if (!link) return reply;
      const { contact, lang } = link;
      if (!contact || contact.erased_at)
        return sendMessagePage(ctx, reply, { title: 'invalid_title', text: 'invalid_text' }, { lang, status: 410 });
      const body = (request.body ?? {}) as Record<string, string | string[]>;
      const ticked = new Set(([] as string[]).concat(body.consent ?? []));
      await savePreferences(
        ctx,
        personRequest(request),
        contact,
        ticked,
        body.action === 'withdraw_all',
        evidenceOf(ctx, request, '/p/[token]', lang),
      );
      return showPreferences(request, reply, true);
    },
  );
}
