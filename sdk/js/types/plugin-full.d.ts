/// <reference path="./interfaces/portcullis-plugin-cache.d.ts" />
/// <reference path="./interfaces/portcullis-plugin-crypto.d.ts" />
/// <reference path="./interfaces/portcullis-plugin-handler.d.ts" />
/// <reference path="./interfaces/portcullis-plugin-host.d.ts" />
/// <reference path="./interfaces/portcullis-plugin-outbound-http.d.ts" />
/// <reference path="./interfaces/portcullis-plugin-types.d.ts" />
declare module 'portcullis:plugin/plugin-full@0.1.0' {
  export type * as PortcullisPluginCache010 from 'portcullis:plugin/cache@0.1.0'; // import portcullis:plugin/cache@0.1.0
  export type * as PortcullisPluginCrypto010 from 'portcullis:plugin/crypto@0.1.0'; // import portcullis:plugin/crypto@0.1.0
  export type * as PortcullisPluginHost010 from 'portcullis:plugin/host@0.1.0'; // import portcullis:plugin/host@0.1.0
  export type * as PortcullisPluginOutboundHttp010 from 'portcullis:plugin/outbound-http@0.1.0'; // import portcullis:plugin/outbound-http@0.1.0
  export type * as PortcullisPluginTypes010 from 'portcullis:plugin/types@0.1.0'; // import portcullis:plugin/types@0.1.0
  export * as handler from 'portcullis:plugin/handler@0.1.0'; // export portcullis:plugin/handler@0.1.0
}
