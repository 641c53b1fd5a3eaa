using System.Runtime.InteropServices.JavaScript;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("browser")]

// Nothing runs at start: JavaScript drives everything through MicroLm.Web.Api.
return 0;
