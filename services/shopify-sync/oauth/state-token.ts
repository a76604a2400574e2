import { oauthStateToken } from '../../../shared/security/oauth-state.ts';

/**
 * The OAuth `state` of an install: workspace, shop and expiry, sealed under a key derived from the
 * app's API secret (shared/security/oauth-state.ts), so it cannot be moved to another shop and
 * also serves as Shopify's nonce.
 */
export interface InstallState {
  workspaceId: string;
  shop: string;
  expiresAt: number;
}

export const { seal: sealState, open: openState } = oauthStateToken<InstallState>('ionflux-shopify', { workspaceId: 'w', shop: 's' });
