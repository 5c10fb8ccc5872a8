/**
 * Key Protect endpoint URLs of a region. IBM's regional endpoints are `https://<region>.kms.cloud.ibm.com` and the
 * private ones `https://private.<region>.kms.cloud.ibm.com` (ibm-cloud-docs/key-protect `regions.md`). Pure.
 */

const IBM_PUBLIC = /^https:\/\/([a-z]{2}-[a-z]{2,6})\.kms\.cloud\.ibm\.com\/?$/;

/** IBM's Key Protect endpoint of a region: the public one, or the private one (reached from IBM Cloud's network). */
export function ibmKeyProtectUrl(region: string, type: 'public' | 'private' = 'public'): string {
  return type === 'private' ? `https://private.${region}.kms.cloud.ibm.com` : `https://${region}.kms.cloud.ibm.com`;
}

/** Public and private Key Protect URLs for a member, from the configured (public) URL of its region. */
export function keyProtectEndpoints(publicUrl: string): { public: string; private: string | null } {
  const url = publicUrl.replace(/\/+$/, '');
  const m = IBM_PUBLIC.exec(url);
  // A URL that is not IBM's public endpoint (a private endpoint already, a proxy, the local emulator) has no known
  // private twin: report null rather than guess.
  return { public: url, private: m ? ibmKeyProtectUrl(m[1] as string, 'private') : null };
}
